"""
SMPP 3.4 provider: sends and receives over a long-lived `bind_transceiver` to an SMSC.

It receives no webhooks and makes no HTTP call. Its sends go through the bind that
`python manage.py smpp_worker --shortcode <number>` holds for one shortcode (smpp_gateway):
the deliver task leaves its messages `queued` and the bind claims them
(`sends_through_bind`). MO and delivery receipts arrive as `deliver_sm` on that bind and
go through the same services as webhooks. This module declares the shortcode options the
bind reads, the receipt states and the checks staff see when they save a shortcode.
Receipt words and message_state values: SMPP 3.4 Appendix B and section 5.2.28.
"""

from typing import Any

from delivery.providers.base import (
    OutboundSMS,
    PermanentSendError,
    Provider,
    ProviderOption,
    SendResult,
    StatusUpdate,
    Verified,
    WebhookBadRequest,
    WebhookRequest,
    literal_credential_errors,
)
from delivery.statuses import Status

DEFAULT_PORT = 2775
DEFAULT_WINDOW = 10
DEFAULT_ENQUIRE_LINK_SECONDS = 30
# The SMSC password is read from this environment variable unless a shortcode names
# another; every name it may read starts with the prefix, so staff cannot point the bind
# at another secret of the deployment (DJANGO_SECRET_KEY) and send it to a host they chose.
DEFAULT_PASSWORD_ENV = "SMPP_PASSWORD"  # noqa: S105 (a variable name, not a password)
PASSWORD_ENV_PREFIX = "SMPP_"  # noqa: S105
HOST = r"[A-Za-z0-9.:\[\]-]{1,253}"
TLV_TAG = r"0[xX][0-9A-Fa-f]{1,4}|[0-9]{1,5}"
# Vendor TLVs commonly used by Indian SMSCs for the DLT PE ID and template ID.
DEFAULT_PE_ID_TLV = "0x1400"
DEFAULT_TEMPLATE_ID_TLV = "0x1401"

# message_state TLV (0x0427) values.
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVERED",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIVERABLE",
    6: "ACCEPTED",
    7: "UNKNOWN",
    8: "REJECTED",
}


def tlv_tag(value: Any) -> int | None:
    """A TLV tag written as hex ("0x1400") or decimal ("5120"); None when it is neither or out of range."""
    text = str(value if value is not None else "").strip().lower()
    try:
        tag = int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        return None
    return tag if 0 < tag <= 0xFFFF else None


class SmppProvider(Provider):
    slug = "smpp"
    receives_webhooks = False
    # message_deliver leaves these messages `queued`: the shortcode's bind submits them.
    sends_through_bind = True
    SECRET_ENV = (DEFAULT_PASSWORD_ENV,)
    OPTIONS = (
        ProviderOption("host", "SMSC host", required=True, pattern=HOST, help_text="Host name or address of the SMSC."),
        ProviderOption("port", "SMSC port", kind="int", default=DEFAULT_PORT, min_value=1, max_value=65535),
        ProviderOption(
            "system_id",
            "System ID",
            required=True,
            pattern=r".{1,15}",
            help_text="The bind's login, 1 to 15 characters.",
        ),
        ProviderOption(
            "password_env",
            "Password variable",
            kind="env",
            default=DEFAULT_PASSWORD_ENV,
            pattern=rf"{PASSWORD_ENV_PREFIX}[A-Z0-9_]{{1,60}}",
            help_text=f"The variable holding the bind password (its name starts with {PASSWORD_ENV_PREFIX}).",
        ),
        ProviderOption(
            "system_type", "System type", pattern=r".{0,12}", help_text="Often empty; some SMSCs ask for one."
        ),
        ProviderOption("bind_ton", "Bind TON", kind="int", default=0, min_value=0, max_value=6),
        ProviderOption("bind_npi", "Bind NPI", kind="int", default=0, min_value=0, max_value=18),
        ProviderOption(
            "source_ton",
            "Source TON",
            kind="int",
            default=3,
            min_value=0,
            max_value=6,
            help_text="For a numeric sender; alphanumeric ones go as 5.",
        ),
        ProviderOption("source_npi", "Source NPI", kind="int", default=0, min_value=0, max_value=18),
        ProviderOption("dest_ton", "Destination TON", kind="int", default=1, min_value=0, max_value=6),
        ProviderOption("dest_npi", "Destination NPI", kind="int", default=1, min_value=0, max_value=18),
        ProviderOption(
            "pe_id_tlv",
            "DLT PE ID TLV tag",
            default=DEFAULT_PE_ID_TLV,
            pattern=TLV_TAG,
            help_text="Hex (0x1400) or decimal.",
        ),
        ProviderOption(
            "template_id_tlv",
            "DLT template ID TLV tag",
            default=DEFAULT_TEMPLATE_ID_TLV,
            pattern=TLV_TAG,
            help_text="Hex (0x1401) or decimal.",
        ),
        ProviderOption(
            "window",
            "Window",
            kind="int",
            default=DEFAULT_WINDOW,
            min_value=1,
            max_value=1000,
            help_text="Submits outstanding before a response.",
        ),
        ProviderOption(
            "enquire_link_seconds",
            "Keep-alive (s)",
            kind="int",
            default=DEFAULT_ENQUIRE_LINK_SECONDS,
            min_value=5,
            max_value=3600,
        ),
        ProviderOption(
            "mps",
            "Segments per second",
            kind="int",
            min_value=1,
            max_value=10000,
            help_text="Throughput of the bind, counted in segments; empty: the shortcode's messages per second.",
        ),
    )
    STATUS_MAP = {
        # Receipt text `stat:` words.
        "delivrd": Status.DELIVERED,
        "undeliv": Status.UNDELIVERED,
        "expired": Status.UNDELIVERED,
        "deleted": Status.UNDELIVERED,
        "rejectd": Status.REJECTED,
        "acceptd": Status.SENT,
        "unknown": Status.SENT,
        "enroute": Status.SENT,
        # message_state TLV values.
        "1": Status.SENT,
        "2": Status.DELIVERED,
        "3": Status.UNDELIVERED,
        "4": Status.UNDELIVERED,
        "5": Status.UNDELIVERED,
        "6": Status.SENT,
        "7": Status.SENT,
        "8": Status.REJECTED,
    }

    def authenticate(self, webhook: WebhookRequest) -> Verified:
        raise WebhookBadRequest("the smpp provider receives no webhooks: its bind receives deliver_sm")

    def parse_inbound(self, webhook: WebhookRequest, verified: Verified):
        raise WebhookBadRequest("the smpp provider receives no webhooks")

    def parse_status(self, webhook: WebhookRequest, verified: Verified) -> list[StatusUpdate]:
        raise WebhookBadRequest("the smpp provider receives no webhooks")

    def send(self, sms: OutboundSMS) -> SendResult:
        # Reached only if something bypasses message_deliver's hand-over: fail loudly, never silently.
        raise PermanentSendError(
            "smpp messages are submitted by the shortcode's bind (smpp_worker)", code="smpp_no_bind"
        )

    def config_errors(self, options: dict[str, Any]) -> list[str]:
        """Beyond each option's kind (options_errors): no literal credential, TLV tags in range."""
        errors = literal_credential_errors(options)
        for name in ("pe_id_tlv", "template_id_tlv"):
            value = options.get(name)
            if value not in (None, "") and tlv_tag(value) is None:
                errors.append(f"'{name}' must be a TLV tag, hex (0x1400) or decimal, 1 to 65535")
        return errors

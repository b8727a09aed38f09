"""
Generic provider: for aggregators without a module of their own.

Inbound (JSON or form): `from`, `to`, `body`, optional `id`; the seed's names `From/To/
Body`, `sender`, `shortcode`, `message`, `text`, `message_id` are accepted too.
Status (JSON or form): `id` (or `message_id`), `status`, optional `error_code`,
`error_message`; `reference` or `?ref=` carries our own message id.
Auth when WEBHOOK_SECRET is set: `X-Webhook-Secret: <secret>`, or `X-Signature-Timestamp:
<unix seconds>` with `X-Signature: <hex HMAC-SHA256 of "<timestamp>." + the raw body>`,
refused more than WEBHOOK_SIGNATURE_MAX_AGE_SECONDS from now so a capture expires. The
signature covers the body, not the URL: the body's `reference` wins over `?ref=`, and a
disagreeing `?ref=` is refused. Outbound: POST JSON to GATEWAY_OUTBOUND_URL (or the
shortcode's `outbound_url`, whose origin must be in GATEWAY_ALLOWED_ORIGINS) with
`Authorization: Bearer GATEWAY_API_KEY` (or the GATEWAY_* variable its `api_key_env` names).
"""

import re
import time

from django.conf import settings

from delivery.providers.base import (
    VOUCHED_BODY_ONLY,
    VOUCHED_WHOLE_REQUEST,
    InboundSMS,
    MissingField,
    OutboundSMS,
    PermanentSendError,
    Provider,
    ProviderOption,
    SendResult,
    StatusUpdate,
    Verified,
    WebhookForbidden,
    WebhookRequest,
    constant_time_equals,
    first_of,
    literal_credential_errors,
    outbound_url_refusal,
    request_data,
    status_reference,
    verify_hmac_sha256_hex,
)
from delivery.providers.http import http_call
from delivery.redaction import env_secret
from delivery.statuses import Status

SENDER_FIELDS = ("from", "From", "sender", "msisdn", "mobile")
RECIPIENT_FIELDS = ("to", "To", "shortcode", "recipient")
BODY_FIELDS = ("body", "Body", "message", "text", "Text")
ID_FIELDS = ("id", "message_id", "MessageSid", "messageId")
SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
TIMESTAMP = re.compile(r"[0-9]{1,12}")


class GenericProvider(Provider):
    slug = "generic"
    WEBHOOK_SECRET_SETTINGS = ("WEBHOOK_SECRET",)
    CREDENTIAL_HEADERS = ("X-Webhook-Secret", "X-Signature")
    SECRET_SETTINGS = ("WEBHOOK_SECRET", "GATEWAY_API_KEY")
    OPTIONS = (
        ProviderOption(
            "outbound_url",
            "Outbound URL",
            kind="url",
            help_text="Where this shortcode's replies are POSTed instead of GATEWAY_OUTBOUND_URL; "
            "its origin must be in GATEWAY_ALLOWED_ORIGINS.",
        ),
        ProviderOption(
            "api_key_env",
            "API key variable",
            kind="env",
            pattern=r"GATEWAY_[A-Z0-9_]+",
            help_text="The environment variable (GATEWAY_*) holding this gateway's bearer key; empty: GATEWAY_API_KEY.",
        ),
        ProviderOption(
            "dlt_fields",
            "DLT field names",
            kind="mapping",
            keys=("dlt_template_id", "dlt_entity_id", "dlt_category"),
            help_text="The names this gateway gives the DLT IDs in its JSON, e.g. template_id, pe_id.",
        ),
        ProviderOption(
            "timeout",
            "Timeout (seconds)",
            kind="int",
            min_value=1,
            max_value=60,
            help_text="Per send; empty: GATEWAY_TIMEOUT_SECONDS.",
        ),
    )
    SENSITIVE_HEADERS = ("X-Webhook-Secret", "X-Signature")
    # Our generic contract defines no opt-out error code.
    OPTED_OUT_ERROR_CODES = frozenset()
    STATUS_MAP = {
        "queued": Status.QUEUED,
        "accepted": Status.QUEUED,
        "enroute": Status.SENT,
        "submitted": Status.SENT,
        "sent": Status.SENT,
        "delivered": Status.DELIVERED,
        "delivrd": Status.DELIVERED,
        "undelivered": Status.UNDELIVERED,
        "undeliv": Status.UNDELIVERED,
        "expired": Status.UNDELIVERED,
        "failed": Status.FAILED,
        "rejected": Status.REJECTED,
        "rejectd": Status.REJECTED,
    }

    def authenticate(self, webhook: WebhookRequest) -> Verified:
        secret = settings.WEBHOOK_SECRET
        if not secret:
            return Verified(VOUCHED_WHOLE_REQUEST)  # webhooks are open (DEBUG): taken as sent
        if constant_time_equals(secret, webhook.headers.get("X-Webhook-Secret")):
            return Verified(VOUCHED_WHOLE_REQUEST)
        signature = webhook.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise WebhookForbidden(f"missing or wrong X-Webhook-Secret, or no {SIGNATURE_HEADER}")
        timestamp = webhook.headers.get(TIMESTAMP_HEADER, "")
        if not signature_fresh(timestamp, now=time.time()):
            raise WebhookForbidden(
                f"{TIMESTAMP_HEADER} missing or more than {settings.WEBHOOK_SIGNATURE_MAX_AGE_SECONDS} s from now"
            )
        if not verify_hmac_sha256_hex(secret, signed_content(timestamp, webhook.body), signature):
            raise WebhookForbidden(f"wrong {SIGNATURE_HEADER}")
        return Verified(VOUCHED_BODY_ONLY)

    def parse_inbound(self, webhook: WebhookRequest, verified: Verified) -> InboundSMS:
        data = request_data(webhook)
        return InboundSMS(
            sender=first_of(data, *SENDER_FIELDS),
            recipient=first_of(data, *RECIPIENT_FIELDS),
            # An empty text is a message too (it gets the menu), but the field must be there.
            body=self._body(data),
            provider_message_id=first_of(data, *ID_FIELDS, required=False) or None,
            raw=data,
            **self._replay(webhook, verified),
        )

    @staticmethod
    def _replay(webhook: WebhookRequest, verified: Verified) -> dict:
        """A timestamped signature identifies this very request for as long as it is accepted."""
        if verified.scope != VOUCHED_BODY_ONLY:
            return {}
        return {
            "replay_key": webhook.headers.get(SIGNATURE_HEADER, ""),
            # The timestamp passes for the window either side of now.
            "replay_window_seconds": 2 * settings.WEBHOOK_SIGNATURE_MAX_AGE_SECONDS,
        }

    def parse_status(self, webhook: WebhookRequest, verified: Verified) -> list[StatusUpdate]:
        data = request_data(webhook)
        reference = status_reference(webhook, verified, first_of(data, "reference", required=False))
        provider_message_id = first_of(data, *ID_FIELDS, required=not reference)
        provider_status = first_of(data, "status", "Status")
        update = StatusUpdate(
            status=self.map_status(provider_status),
            provider_status=provider_status,
            provider_message_id=provider_message_id,
            reference=reference,
            error_code=first_of(data, "error_code", "ErrorCode", required=False),
            error_message=first_of(data, "error_message", "ErrorMessage", required=False),
            raw=data,
        )
        return [update]

    def send(self, sms: OutboundSMS) -> SendResult:
        url = sms.options.get("outbound_url") or settings.GATEWAY_OUTBOUND_URL
        if not url:
            raise PermanentSendError("GATEWAY_OUTBOUND_URL is not configured", code="not_configured")
        # Checked again here, not only when staff save: options saved before the allowlist
        # changed must not take the key elsewhere either.
        refusal = outbound_url_refusal(url, gateway_allowed_origins()) if sms.options.get("outbound_url") else None
        if refusal:
            raise PermanentSendError(refusal, code="bad_config")
        api_key = gateway_api_key(sms.options)
        payload = {
            "to": sms.to,
            "from": sms.sender,
            "message": sms.body,
            "reference": sms.reference,
            "callback_url": sms.callback_url,
        }
        # DLT IDs go out under the field names the shortcode's aggregator expects,
        # e.g. {"dlt_template_id": "template_id", "dlt_entity_id": "pe_id"}.
        for ours, theirs in (sms.options.get("dlt_fields") or {}).items():
            if sms.options.get(ours):
                payload[str(theirs)] = sms.options[ours]
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = float(sms.options.get("timeout") or settings.GATEWAY_TIMEOUT_SECONDS)
        reply = http_call("POST", url, json=payload, headers=headers, timeout=timeout, secrets=[api_key])
        data = reply.data()
        provider_message_id = str(data.get("id") or data.get("message_id") or "") if isinstance(data, dict) else ""
        if not provider_message_id:
            raise PermanentSendError(
                f"gateway answered {reply.status_code} without an id", code="no_id", exchanges=(reply.exchange,)
            )
        return SendResult(provider_message_id=provider_message_id, exchanges=(reply.exchange,))

    def config_errors(self, options: dict) -> list[str]:
        errors = literal_credential_errors(options)
        if options.get("outbound_url"):
            refusal = outbound_url_refusal(str(options["outbound_url"]), gateway_allowed_origins())
            if refusal:
                errors.append(f"outbound_url: {refusal} (settings.GATEWAY_ALLOWED_ORIGINS)")
        name = options.get("api_key_env")
        if name is not None and not (isinstance(name, str) and API_KEY_ENV_NAME.fullmatch(name)):
            errors.append("api_key_env must name an environment variable GATEWAY_* (upper case)")
        return errors

    def _body(self, data: dict) -> str:
        for name in BODY_FIELDS:
            if name in data:
                return first_of(data, name, required=False)
        raise MissingField("body")


def signed_content(timestamp: str, raw_body: bytes) -> bytes:
    """What X-Signature signs: the timestamp header as sent, a dot, the raw body."""
    return timestamp.encode() + b"." + raw_body


def signature_fresh(timestamp: str, *, now: float) -> bool:
    """The timestamp (Unix seconds, digits only) is within WEBHOOK_SIGNATURE_MAX_AGE_SECONDS of now, either way."""
    if not TIMESTAMP.fullmatch(timestamp):
        return False
    return abs(now - int(timestamp)) <= settings.WEBHOOK_SIGNATURE_MAX_AGE_SECONDS


# A shortcode's own gateway key is an environment variable named in its options, and only
# one of these: staff must not be able to send the database password to the gateway.
API_KEY_ENV_NAME = re.compile(r"GATEWAY_[A-Z0-9_]+")


def gateway_allowed_origins() -> list[str]:
    """GATEWAY_ALLOWED_ORIGINS; the deployment's own GATEWAY_OUTBOUND_URL is always among them."""
    return [*settings.GATEWAY_ALLOWED_ORIGINS, settings.GATEWAY_OUTBOUND_URL]


def gateway_api_key(options: dict) -> str:
    """The bearer key: the environment variable the shortcode names (`api_key_env`), or GATEWAY_API_KEY."""
    name = options.get("api_key_env")
    if not name:
        return settings.GATEWAY_API_KEY
    if not isinstance(name, str) or not API_KEY_ENV_NAME.fullmatch(name):
        raise PermanentSendError("provider option api_key_env must name a GATEWAY_* variable", code="bad_config")
    key = env_secret(name)
    if not key:
        raise PermanentSendError(f"environment variable {name} is not set", code="not_configured")
    return key

"""
Plivo messaging (the facts relied on: docs/PROVIDERS.md, Plivo).

Webhooks are form-encoded and signed with `X-Plivo-Signature-V3` (URL, query and body),
which is required. The Messaging documents' older `X-Plivo-Signature-V2` covers the URL
without its query and a nonce, not the body: it is accepted only with
PLIVO_ALLOW_SIGNATURE_V2 on, and then each nonce once within PLIVO_V2_NONCE_TTL_SECONDS.
The SDK's functions check both. Sends go through the SDK's REST client, whose HTTP is
delivery.providers.http's; PLIVO_API_BASE aims it at another origin (a local stand-in in
tests, an edge proxy in production).
"""

from typing import Any
from urllib.parse import urlsplit

import plivo
import requests
from django.conf import settings
from plivo.exceptions import PlivoRestError
from plivo.utils import validate_signature, validate_v3_signature

from delivery.providers.base import (
    VOUCHED_BODY_ONLY,
    VOUCHED_WHOLE_REQUEST,
    InboundSMS,
    MissingField,
    OutboundSMS,
    PermanentSendError,
    Provider,
    SendError,
    SendResult,
    StatusUpdate,
    Verified,
    WebhookAck,
    WebhookForbidden,
    WebhookRequest,
    first_of,
    form_data,
    request_data,
    status_reference,
)
from delivery.providers.http import HttpReply, http_send, send_error, setting_values
from delivery.providers.replay import nonce_claim
from delivery.statuses import Status

# Plain headers are signed with the token of the (sub)account owning the number, the
# `-Ma-` ones with the main account's: whichever our PLIVO_AUTH_TOKEN is, one matches.
V3_SIGNATURE_HEADERS = ("X-Plivo-Signature-V3", "X-Plivo-Signature-Ma-V3")
V3_NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"
V2_SIGNATURE_HEADERS = ("X-Plivo-Signature-V2", "X-Plivo-Signature-Ma-V2")
V2_NONCE_HEADER = "X-Plivo-Signature-V2-Nonce"

# Shortcode.provider_config keys -> the Send API's India DLT parameters.
DLT_PARAMETERS = {
    "dlt_entity_id": "dlt_entity_id",
    "dlt_template_id": "dlt_template_id",
    "dlt_category": "dlt_template_category",
}


def signature_v3_valid(
    auth_token: str, method: str, url: str, nonce: str, signature: str, params: dict[str, list[str]]
) -> bool:
    """
    Plivo's V3 signature, checked by the SDK (docs/PROVIDERS.md, Plivo: signatures). `signature` may hold several
    comma-separated signatures; one match is enough.
    """
    if not auth_token or not nonce or not signature:
        return False
    try:
        return validate_v3_signature(method, url, nonce, auth_token, signature, params)
    except (PlivoRestError, UnicodeError):
        # The SDK validates its arguments (a URL it cannot read, say) and encodes the headers
        # (a lone surrogate has no UTF-8): either way not a valid signature.
        return False


def signature_v2_valid(auth_token: str, url: str, nonce: str, signature: str) -> bool:
    """Plivo's V2 signature, checked by the SDK: it covers the URL without its query, and the nonce."""
    if not auth_token or not nonce or not signature:
        return False
    try:
        return validate_signature(url, nonce, signature, auth_token)
    except UnicodeError:  # a header the SDK cannot encode is no signature
        return False


class _SdkClient(plivo.RestClient):
    """
    The SDK's client, its requests sent through delivery.providers.http like every send
    (pooled, timed, recorded, masked) instead of the SDK's own sessions, and to
    `api_base` instead of Plivo's host when set (the SDK resets its own base URI on every
    request, so the prepared request is rebased). Every answer goes back to the SDK,
    which parses it and raises its own errors; the replies stay here, because those
    errors drop the status and headers that the retry decision and Retry-After need.
    One per send.
    """

    def __init__(self, auth_id: str, auth_token: str, *, api_base: str, timeout: float):
        super().__init__(auth_id, auth_token, timeout=timeout)
        self.api_base = api_base.rstrip("/")
        self.replies: list[HttpReply] = []

    def send_request(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        if self.api_base:
            parts = urlsplit(request.url)
            request.url = self.api_base + parts.path + (f"?{parts.query}" if parts.query else "")
        reply = http_send(
            request,
            timeout=self.timeout,
            secrets=setting_values(PlivoProvider.SECRET_SETTINGS),
            service="Plivo",
            check=False,
        )
        self.replies.append(reply)
        return reply.response


class PlivoProvider(Provider):
    slug = "plivo"
    WEBHOOK_SECRET_SETTINGS = ("PLIVO_AUTH_TOKEN",)
    CREDENTIAL_HEADERS = (*V3_SIGNATURE_HEADERS, *V2_SIGNATURE_HEADERS)
    # The auth ID is the user name of the API's basic auth: masked with the token.
    SECRET_SETTINGS = ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN")
    SEND_SETTINGS = ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN")
    SENSITIVE_HEADERS = (*V3_SIGNATURE_HEADERS, *V2_SIGNATURE_HEADERS)
    # A message to a number that sent STOP to our Plivo number fails with error code 200
    # (support.plivo.com "Can I reply to customers who have opted out?").
    OPTED_OUT_ERROR_CODES = frozenset({"200"})
    # Plivo's message states (docs/PROVIDERS.md, Plivo: status callbacks) in our words.
    STATUS_MAP = {
        "queued": Status.QUEUED,
        "sent": Status.SENT,  # final in the US and Canada, where carriers send no receipts
        "delivered": Status.DELIVERED,
        "read": Status.DELIVERED,  # WhatsApp: read implies delivered
        "undelivered": Status.UNDELIVERED,
        "failed": Status.FAILED,  # never handed to a carrier
        "rejected": Status.REJECTED,  # carrier or regulatory rejection
        # A state of *inbound* messages: on an outbound report it says nothing about
        # progress, and `queued`, the lowest rank, moves nothing.
        "received": Status.QUEUED,
    }

    def authenticate(self, webhook: WebhookRequest) -> Verified:
        token = settings.PLIVO_AUTH_TOKEN
        if not token:
            return Verified(VOUCHED_WHOLE_REQUEST)  # webhooks are open (DEBUG): taken as sent
        url = webhook.url
        v3 = [webhook.headers[name] for name in V3_SIGNATURE_HEADERS if webhook.headers.get(name)]
        if v3 or webhook.headers.get(V3_NONCE_HEADER):
            # V3 covers the query and the body; once it is offered, the weaker V2 is not tried.
            nonce = webhook.headers.get(V3_NONCE_HEADER, "")
            # Lists, so that a repeated field is signed as Plivo signed it. form_data is the
            # form request_data parses (and refuses any other media type), so the parse reads
            # exactly what the signature covers.
            form = form_data(webhook)
            params = {name: form.getlist(name) for name in form}
            if not any(signature_v3_valid(token, webhook.method, url, nonce, sig, params) for sig in v3):
                raise WebhookForbidden(f"missing or wrong {V3_SIGNATURE_HEADERS[0]}")
            return Verified(VOUCHED_WHOLE_REQUEST)
        v2 = [webhook.headers[name] for name in V2_SIGNATURE_HEADERS if webhook.headers.get(name)]
        if not v2:
            raise WebhookForbidden(f"missing {V3_SIGNATURE_HEADERS[0]}")
        if not settings.PLIVO_ALLOW_SIGNATURE_V2:
            # V2 signs the URL and a nonce, not the body: one captured signature would admit any body.
            raise WebhookForbidden(
                f"{V2_SIGNATURE_HEADERS[0]} does not cover the body; {V3_SIGNATURE_HEADERS[0]} is required"
            )
        nonce = webhook.headers.get(V2_NONCE_HEADER, "")
        if not any(signature_v2_valid(token, url, nonce, sig) for sig in v2):
            raise WebhookForbidden(f"missing or wrong {V2_SIGNATURE_HEADERS[0]}")
        # V2 carries no timestamp, so its signature never expires: each nonce passes once.
        claimed = nonce_claim(scheme="plivo-v2", nonce=nonce, ttl_seconds=settings.PLIVO_V2_NONCE_TTL_SECONDS)
        if claimed is None:
            raise WebhookForbidden(f"{V2_NONCE_HEADER} was already used: a replayed request is refused")
        # V2 covers the URL without its query: an unsigned `?ref=` may not choose the message.
        return Verified(VOUCHED_BODY_ONLY, nonces=(claimed,))

    def parse_inbound(self, webhook: WebhookRequest, verified: Verified) -> InboundSMS:
        """
        Incoming message to the application's message_url (form-encoded). Numbers come
        without "+"; the caller normalises them.
        Docs: https://www.plivo.com/docs/messaging/api/message/handling-incoming
        """
        data = request_data(webhook)
        # SMS carry `Text`; MMS carry `Body`. An empty text is a message too.
        text_field = next((name for name in ("Text", "Body") if name in data), None)
        if text_field is None:
            raise MissingField("Text")
        return InboundSMS(
            sender=first_of(data, "From"),
            recipient=first_of(data, "To"),
            body=first_of(data, text_field, required=False),
            provider_message_id=first_of(data, "MessageUUID"),
            raw=data,
        )

    def parse_status(self, webhook: WebhookRequest, verified: Verified) -> list[StatusUpdate]:
        """
        Message status callback to the `url` given at send, one message per request. Its
        times carry no zone, so the report's time is when we received it. Each part of a
        long message reports under its own MessageUUID, with ParentMessageUUID naming the
        UUID the send answered with: the report is about that message, so it carries that id.
        Docs: https://www.plivo.com/docs/messaging/api/message/message-status-callbacks
        """
        data = request_data(webhook)
        provider_status = first_of(data, "Status")
        message_uuid = first_of(data, "MessageUUID")
        update = StatusUpdate(
            status=self.map_status(provider_status),
            provider_status=provider_status,
            provider_message_id=first_of(data, "ParentMessageUUID", required=False) or message_uuid,
            reference=status_reference(webhook, verified, ""),
            error_code=first_of(data, "ErrorCode", required=False),
            raw=data,
        )
        return [update]

    def send(self, sms: OutboundSMS) -> SendResult:
        """
        Send a message. Docs: https://www.plivo.com/docs/messaging/api/message/send-a-message
        """
        if not settings.PLIVO_AUTH_ID or not settings.PLIVO_AUTH_TOKEN:
            raise PermanentSendError("PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN must be set", code="not_configured")
        try:
            # A client per send: it keeps this send's replies, and the provider stays stateless.
            client = _SdkClient(
                settings.PLIVO_AUTH_ID,
                settings.PLIVO_AUTH_TOKEN,
                api_base=settings.PLIVO_API_BASE,
                timeout=settings.GATEWAY_TIMEOUT_SECONDS,
            )
        except PlivoRestError as exc:  # the SDK refuses an auth ID not shaped MA…/SA…
            raise PermanentSendError(f"Plivo client: {exc}", code="not_configured") from exc
        params: dict[str, Any] = {
            "src": sms.sender,
            # Plivo wants digits with the country code, no "+" (docs/PROVIDERS.md, Plivo: send).
            "dst": sms.to.lstrip("+"),
            "text": sms.body,
            "method": "POST",
        }
        if sms.callback_url:
            params["url"] = sms.callback_url
        for option, parameter in DLT_PARAMETERS.items():
            if sms.options.get(option):
                params[parameter] = str(sms.options[option])
        # A call that got no answer raises TransientSendError from the helper, through the SDK.
        try:
            with client:  # closes the SDK's own sessions, which it opened and we never use
                response = client.messages.create(**params)
        except PlivoRestError as exc:
            raise self._api_error(exc, client.replies) from exc
        exchanges = tuple(reply.exchange for reply in client.replies)
        uuids = getattr(response, "message_uuid", None) or []
        if not uuids:
            # Plivo took it but we cannot match its reports; retrying could send it twice.
            raise PermanentSendError(
                "Plivo accepted the message without a message_uuid", code="no_id", exchanges=exchanges
            )
        # One UUID per destination; we send to one.
        return SendResult(provider_message_id=str(uuids[0]), exchanges=exchanges)

    @staticmethod
    def _api_error(exc: PlivoRestError, replies: list[HttpReply]) -> SendError:
        """The SDK's error for the last answer, sorted by its status (5xx and 429 retried). Plivo's carry no code."""
        if not replies:
            # The SDK refused the arguments before calling (e.g. src equal to dst).
            return PermanentSendError(f"Plivo SDK refused the message: {exc}", code="invalid_request")
        status = replies[-1].status_code
        exchanges = tuple(reply.exchange for reply in replies)
        return send_error(replies[-1], f"Plivo answered {status}: {exc}", code=str(status), exchanges=exchanges)

    def ack(self) -> WebhookAck:
        # An empty Plivo XML document: reply later through the API, never in the webhook's answer.
        return WebhookAck(content_type="application/xml", body="<Response></Response>")

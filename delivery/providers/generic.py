"""
Generic provider: for aggregators without a module of their own.

Inbound (JSON or form): `from`, `to`, `body`, optional `id`; the seed's names `From/To/
Body`, `sender`, `shortcode`, `message`, `text`, `message_id` are accepted too.
Status (JSON or form): `id` (or `message_id`), `status`, optional `error_code`,
`error_message`; `reference` or `?ref=` carries our own message id.
Auth when WEBHOOK_SECRET is set: `X-Webhook-Secret: <secret>` or `X-Signature: <hex
HMAC-SHA256 of the raw body>`. Outbound: POST JSON to GATEWAY_OUTBOUND_URL (or the
shortcode's `outbound_url`) with `Authorization: Bearer GATEWAY_API_KEY`.
"""

import json

import requests
from django.conf import settings
from django.http import HttpRequest

from delivery.providers.base import (
    HttpExchange,
    InboundSMS,
    MissingField,
    OutboundSMS,
    PermanentSendError,
    Provider,
    SendResult,
    StatusUpdate,
    TransientSendError,
    WebhookForbidden,
    constant_time_equals,
    exchange_from_response,
    first_of,
    request_data,
    retry_after_seconds,
    verify_hmac_sha256_hex,
    webhooks_open_without_secret,
)

SENDER_FIELDS = ("from", "From", "sender", "msisdn", "mobile")
RECIPIENT_FIELDS = ("to", "To", "shortcode", "recipient")
BODY_FIELDS = ("body", "Body", "message", "text", "Text")
ID_FIELDS = ("id", "message_id", "MessageSid", "messageId")


class GenericProvider(Provider):
    slug = "generic"
    WEBHOOK_SECRET_SETTINGS = ("WEBHOOK_SECRET",)
    STATUS_MAP = {
        "queued": "queued",
        "accepted": "queued",
        "enroute": "sent",
        "submitted": "sent",
        "sent": "sent",
        "delivered": "delivered",
        "delivrd": "delivered",
        "undelivered": "undelivered",
        "undeliv": "undelivered",
        "expired": "undelivered",
        "failed": "failed",
        "rejected": "rejected",
        "rejectd": "rejected",
    }

    def authenticate(self, request: HttpRequest) -> None:
        secret = settings.WEBHOOK_SECRET
        if not secret:
            if webhooks_open_without_secret():
                return
            raise WebhookForbidden("WEBHOOK_SECRET is not configured; webhooks are refused")
        if constant_time_equals(secret, request.headers.get("X-Webhook-Secret")):
            return
        if verify_hmac_sha256_hex(secret, request.body, request.headers.get("X-Signature", "")):
            return
        raise WebhookForbidden("missing or wrong X-Webhook-Secret / X-Signature")

    def parse_inbound(self, request: HttpRequest) -> InboundSMS:
        data = request_data(request)
        return InboundSMS(
            sender=first_of(data, *SENDER_FIELDS),
            recipient=first_of(data, *RECIPIENT_FIELDS),
            # An empty text is a message too (it gets the menu), but the field must be there.
            body=self._body(data),
            provider_message_id=first_of(data, *ID_FIELDS, required=False) or None,
            raw=data,
        )

    def parse_status(self, request: HttpRequest) -> list[StatusUpdate]:
        data = request_data(request)
        reference = request.GET.get("ref") or first_of(data, "reference", required=False)
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
        headers = {"Authorization": f"Bearer {settings.GATEWAY_API_KEY}"} if settings.GATEWAY_API_KEY else {}
        timeout = float(sms.options.get("timeout") or settings.GATEWAY_TIMEOUT_SECONDS)
        response, exchange = post_json(url, payload, headers, timeout=timeout)
        try:
            data = response.json()
        except ValueError:
            data = {}
        provider_message_id = str(data.get("id") or data.get("message_id") or "") if isinstance(data, dict) else ""
        if not provider_message_id:
            raise PermanentSendError(
                f"gateway answered {response.status_code} without an id", code="no_id", exchanges=(exchange,)
            )
        return SendResult(provider_message_id=provider_message_id, raw=data, exchanges=(exchange,))

    def _body(self, data: dict) -> str:
        for name in BODY_FIELDS:
            if name in data:
                return first_of(data, name, required=False)
        raise MissingField("body")


# One pooled session per process: a keep-alive connection to the gateway saves a TCP
# (and TLS) handshake on every send.
SESSION = requests.Session()


def post_json(
    url: str, payload: dict, headers: dict[str, str], *, timeout: float | None = None
) -> tuple[requests.Response, HttpExchange]:
    """POST and sort failures into transient (retry) and permanent (give up) ones."""
    try:
        response = SESSION.post(url, json=payload, headers=headers, timeout=timeout or settings.GATEWAY_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        failed = HttpExchange(
            method="POST", url=url, request_headers=headers, request_body=json.dumps(payload), error=repr(exc)
        )
        code = "timeout" if isinstance(exc, requests.Timeout) else "connection"
        raise TransientSendError(f"gateway {code}: {exc}", code=code, exchanges=(failed,)) from exc
    exchange = exchange_from_response(response)
    raise_for_send_status(response, exchange)
    return response, exchange


def raise_for_send_status(response: requests.Response, exchange: HttpExchange) -> None:
    """5xx and 429 are worth retrying (Retry-After honoured); any other 4xx will not get better."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise TransientSendError(
            f"gateway answered {status}: {response.text[:200]}",
            code=str(status),
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            exchanges=(exchange,),
        )
    if status >= 400:
        raise PermanentSendError(
            f"gateway answered {status}: {response.text[:200]}", code=str(status), exchanges=(exchange,)
        )

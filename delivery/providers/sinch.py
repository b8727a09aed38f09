"""
Sinch SMS REST API (xms/v1).

Inbound `mo_text` and both delivery-report shapes arrive as JSON; numbers carry no
leading "+" (the caller normalises them). Our reference travels as the batch's
`client_reference` and as `?ref=` on the callback URL.

Auth: with SINCH_WEBHOOK_SECRET set, the HMAC headers Sinch adds when signing is enabled
on the account (x-sinch-webhook-signature, -nonce, -timestamp); otherwise `?token=` =
SINCH_WEBHOOK_TOKEN, because SMS callbacks are not signed by default. The HMAC covers the
body, not the URL: a signed report's `client_reference` wins over `?ref=`, a disagreeing
`?ref=` is refused, and each nonce passes once.

Docs: https://developers.sinch.com/docs/sms/api-reference/ (Batches, Inbounds, Delivery
reports) and https://developers.sinch.com/docs/sms/api-reference/sms/tag/Webhooks/.
"""

import base64
import hashlib
import hmac
import re
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from delivery.providers.base import (
    VOUCHED_BODY_ONLY,
    InboundSMS,
    MissingField,
    OutboundSMS,
    PermanentSendError,
    Provider,
    SendResult,
    StatusUpdate,
    Verified,
    WebhookBadRequest,
    WebhookForbidden,
    WebhookRequest,
    first_of,
    request_data,
    status_reference,
    verify_webhook_token,
)
from delivery.providers.http import http_call
from delivery.providers.replay import nonce_claim
from delivery.statuses import Status

SIGNATURE_HEADER = "x-sinch-webhook-signature"
NONCE_HEADER = "x-sinch-webhook-signature-nonce"
TIMESTAMP_HEADER = "x-sinch-webhook-signature-timestamp"
# Sinch's SDK checks no age; a captured request replayed later must not pass.
MAX_SIGNATURE_AGE_SECONDS = 300

MO_TYPES = frozenset({"mo_text"})
BATCH_REPORT_TYPES = frozenset({"delivery_report_sms"})
RECIPIENT_REPORT_TYPES = frozenset({"recipient_delivery_report_sms"})

# Report codes that say why a message did not arrive (0 delivered, 400 queued and 401
# dispatched are not errors); kept as text so support agents need not look them up.
ERROR_CODES = {
    402: "unroutable",
    403: "internal error",
    404: "temporary delivery failure",
    405: "unmatched parameter",
    406: "internal expiry",
    407: "cancelled",
    408: "internal reject",
    410: "unmatched default originator",
    411: "exceeded parts limit",
    412: "unprovisioned region",
    413: "blocked account",
}


class SinchProvider(Provider):
    slug = "sinch"
    WEBHOOK_SECRET_SETTINGS = ("SINCH_WEBHOOK_SECRET", "SINCH_WEBHOOK_TOKEN")
    CREDENTIAL_HEADERS = (SIGNATURE_HEADER,)
    SECRET_SETTINGS = ("SINCH_API_TOKEN", "SINCH_WEBHOOK_SECRET", "SINCH_WEBHOOK_TOKEN")
    SEND_SETTINGS = ("SINCH_SERVICE_PLAN_ID", "SINCH_API_TOKEN")
    SENSITIVE_HEADERS = (SIGNATURE_HEADER,)
    # Sinch documents no delivery-report or API code for a recipient who opted out.
    OPTED_OUT_ERROR_CODES = frozenset()
    # Sinch's statuses (Title-case on the wire, UPPERCASE in the Python SDK) onto ours.
    STATUS_MAP = {
        "queued": Status.QUEUED,  # still inside Sinch, waiting for the account's rate
        "dispatched": Status.SENT,  # accepted for delivery by the operator's SMSC
        "delivered": Status.DELIVERED,
        # Handed to the SMSC but no receipt (or an unreadable one) came back: `sent` is all
        # we know, and it must not read as a failure to support agents.
        "unknown": Status.SENT,
        "failed": Status.UNDELIVERED,  # the operator tried and could not deliver
        "deleted": Status.UNDELIVERED,  # dropped by the remote SMSC (invalid or opted-out number)
        "rejected": Status.REJECTED,  # refused by the SMSC
        # The next three never reached an operator, which is what our `failed` means.
        "aborted": Status.FAILED,  # unroutable, unprovisioned region, no default originator
        "cancelled": Status.FAILED,  # cancelled before dispatch
        "expired": Status.FAILED,  # expired before it reached the SMSC
    }

    def authenticate(self, webhook: WebhookRequest) -> Verified:
        secret = settings.SINCH_WEBHOOK_SECRET
        if not secret:
            return verify_webhook_token(webhook, self.slug)
        signature = webhook.headers.get(SIGNATURE_HEADER, "")
        nonce = webhook.headers.get(NONCE_HEADER, "")
        timestamp = webhook.headers.get(TIMESTAMP_HEADER, "")
        if not (signature and nonce and timestamp):
            raise WebhookForbidden("missing x-sinch-webhook-signature, -nonce or -timestamp header")
        if not signature_fresh(timestamp, now=time.time()):
            raise WebhookForbidden("x-sinch-webhook-signature-timestamp is not within 5 minutes of now")
        if not signature_valid(secret, webhook.body, nonce, timestamp, signature):
            raise WebhookForbidden("wrong x-sinch-webhook-signature")
        # A timestamp passes for MAX_SIGNATURE_AGE_SECONDS either side of now: keep the nonce that long twice over.
        claimed = nonce_claim(scheme="sinch", nonce=nonce, ttl_seconds=2 * MAX_SIGNATURE_AGE_SECONDS)
        if claimed is None:
            raise WebhookForbidden("x-sinch-webhook-signature-nonce was already used: a replayed request is refused")
        # The signature covers the body, not the callback URL's query.
        return Verified(VOUCHED_BODY_ONLY, nonces=(claimed,))

    def parse_inbound(self, webhook: WebhookRequest, verified: Verified) -> InboundSMS:
        """MO callback, `type: mo_text`. Docs: SMS API reference, Inbounds > MOText."""
        data = request_data(webhook)
        kind = first_of(data, "type")
        if kind not in MO_TYPES:
            # mo_binary carries a Base64 body and UDH: not a keyword a shortcode can answer.
            raise WebhookBadRequest(f"Sinch '{kind}' is not a text SMS (mo_text)", field="type")
        if "body" not in data:
            raise MissingField("body")
        return InboundSMS(
            sender=first_of(data, "from"),
            recipient=first_of(data, "to"),
            body=first_of(data, "body", required=False),
            provider_message_id=first_of(data, "id", required=False) or None,
            raw=data,
        )

    def parse_status(self, webhook: WebhookRequest, verified: Verified) -> list[StatusUpdate]:
        """
        Delivery reports. `recipient_delivery_report_sms` (delivery_report per_recipient,
        what we ask for) is one number; `delivery_report_sms` (summary/full) groups numbers
        by status, with `recipients` listed only for `full`. Docs: SMS API reference,
        Delivery reports > RecipientDeliveryReport and BatchDeliveryReport.
        """
        data = request_data(webhook)
        kind = first_of(data, "type")
        reference = status_reference(webhook, verified, first_of(data, "client_reference", required=False))
        batch_id = first_of(data, "batch_id")
        if kind in RECIPIENT_REPORT_TYPES:
            return [self._update(data, batch_id=batch_id, reference=reference, raw=data)]
        if kind not in BATCH_REPORT_TYPES:
            raise WebhookBadRequest(f"Sinch '{kind}' is not a delivery report", field="type")
        statuses = data.get("statuses")
        if not isinstance(statuses, list):
            raise WebhookBadRequest("'statuses' must be a list", field="statuses")
        updates = []
        for entry in statuses:
            if not isinstance(entry, dict):
                raise WebhookBadRequest("each of 'statuses' must be an object", field="statuses")
            recipients = entry.get("recipients") or [""]
            if not isinstance(recipients, list):
                raise WebhookBadRequest("'recipients' must be a list", field="recipients")
            for recipient in recipients:
                raw = {**data, "statuses": [entry], "recipient": str(recipient)}
                updates.append(self._update(entry, batch_id=batch_id, reference=reference, raw=raw, at_from=data))
        return updates

    def send(self, sms: OutboundSMS) -> SendResult:
        """POST /xms/v1/{service_plan_id}/batches, one recipient per batch so the batch id is the message's."""
        plan, token = settings.SINCH_SERVICE_PLAN_ID, settings.SINCH_API_TOKEN
        if not plan or not token:
            raise PermanentSendError("SINCH_SERVICE_PLAN_ID and SINCH_API_TOKEN must be set", code="not_configured")
        url = f"{settings.SINCH_API_BASE.rstrip('/')}/xms/v1/{plan}/batches"
        payload: dict[str, Any] = {
            "from": sms.sender,
            "to": [sms.to.lstrip("+")],
            "body": sms.body,
            # Sinch's default is "none", which sends no delivery report at all.
            "delivery_report": "per_recipient",
            "client_reference": sms.reference,
        }
        if sms.callback_url:
            payload["callback_url"] = sms.callback_url
        reply = http_call(
            "POST",
            url,
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
            timeout=settings.GATEWAY_TIMEOUT_SECONDS,
            secrets=[token],
            service="Sinch",
        )
        data = reply.data()
        batch_id = str(data.get("id") or "") if isinstance(data, dict) else ""
        if not batch_id:
            raise PermanentSendError(
                f"Sinch answered {reply.status_code} without a batch id", code="no_id", exchanges=(reply.exchange,)
            )
        return SendResult(provider_message_id=batch_id, exchanges=(reply.exchange,))

    def _update(
        self,
        report: dict[str, Any],
        *,
        batch_id: str,
        reference: str,
        raw: dict[str, Any],
        at_from: dict[str, Any] | None = None,
    ) -> StatusUpdate:
        provider_status = first_of(report, "status")
        code = report.get("code")
        error_code = str(code) if isinstance(code, int) and code in ERROR_CODES else ""
        times = at_from if at_from is not None else report
        return StatusUpdate(
            status=self.map_status(provider_status),
            provider_status=provider_status,
            provider_message_id=batch_id,
            reference=reference,
            error_code=error_code,
            error_message=ERROR_CODES.get(code, "") if error_code else "",
            # The operator's own time is when the handset got it; `at` is when Sinch wrote the report.
            at=parse_time(times.get("operator_status_at")) or parse_time(times.get("at")),
            raw=raw,
        )


def signature(secret: str, raw_body: bytes, nonce: str, timestamp: str) -> str:
    """Base64 HMAC-SHA256 of `raw body.nonce.timestamp`, keyed with the secret's UTF-8 bytes."""
    signed = raw_body + b"." + nonce.encode() + b"." + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def signature_valid(secret: str, raw_body: bytes, nonce: str, timestamp: str, given: str) -> bool:
    if not (secret and nonce and timestamp and given):
        return False
    try:
        return hmac.compare_digest(signature(secret, raw_body, nonce, timestamp).encode(), given.strip().encode())
    except UnicodeError:  # a header with no UTF-8 form (a lone surrogate) is no signature
        return False


def signature_fresh(timestamp: str, *, now: float) -> bool:
    """The timestamp (Unix seconds) is within five minutes of now, either way (clock skew)."""
    try:
        signed_at = int(timestamp.strip())
    except ValueError:
        return False
    return abs(now - signed_at) <= MAX_SIGNATURE_AGE_SECONDS


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 UTC as Sinch writes it, which may carry more than six fractional digits."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

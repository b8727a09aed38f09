"""
MSG91 (India).

Send: the legacy `api/sendhttp.php`, because it is the MSG91 API that takes the DLT
template id per request (`DLT_TE_ID`); the Flow API binds DLT ids to a flow configured
in MSG91's panel. sendhttp has no per-message callback URL or client reference, so
reports are matched on MSG91's request id, one per send (one number per request).

Delivery reports: the panel's webhook, v2 (form field `data` = JSON string of
`[{senderId, requestId, report: [{date, number, status, desc, ...}]}]`) or v3 (flat JSON,
one report per object). Auth: `?token=` = MSG91_WEBHOOK_TOKEN, since MSG91 signs nothing.

Docs: msg91.com help "How to use Webhook to get the delivery report"; api.msg91.com
apidoc "Send SMS" (sendhttp.php) and its error codes.
"""

import json
import re
from typing import Any

from django.conf import settings

from delivery.providers.adapter import request_fields
from delivery.providers.base import (
    InboundSMS,
    MissingField,
    OutboundSMS,
    PermanentSendError,
    Provider,
    ProviderOption,
    SendResult,
    StatusUpdate,
    TransientSendError,
    Verified,
    WebhookBadRequest,
    WebhookRequest,
    first_of,
    is_json_media_type,
    json_value,
    status_reference,
    verify_webhook_token,
)
from delivery.providers.http import http_call
from delivery.segments import UCS2, encoding_of
from delivery.statuses import Status

# Inbound (virtual number / keyword forwarding): MSG91 does not publish the field names,
# so these are the names MSG91's own APIs and other Indian aggregators use.
SENDER_FIELDS = ("sender", "mobile", "from", "msisdn", "number")
RECIPIENT_FIELDS = ("inNumber", "to", "shortcode", "vmn", "longcode")
BODY_FIELDS = ("message", "text", "content")
ID_FIELDS = ("id", "requestId", "msgId", "messageId")

# sendhttp's "system errors" (database unreachable, internal error) are MSG91's own
# trouble and worth retrying; every other refusal is about the request and will recur.
TRANSIENT_ERROR_CODES = frozenset({"001", "002", "601"})
# A successful plain-text sendhttp reply is the 24-character request id.
REQUEST_ID = re.compile(r"[0-9A-Za-z]{24}")
TRANSACTIONAL_ROUTE = "4"
PROMOTIONAL_ROUTE = "1"


class Msg91Provider(Provider):
    slug = "msg91"
    WEBHOOK_SECRET_SETTINGS = ("MSG91_WEBHOOK_TOKEN",)
    SECRET_SETTINGS = ("MSG91_AUTH_KEY", "MSG91_WEBHOOK_TOKEN")
    SEND_SETTINGS = ("MSG91_AUTH_KEY",)
    OPTIONS = (
        ProviderOption(
            "route",
            "Route",
            kind="choice",
            choices=((TRANSACTIONAL_ROUTE, "4: transactional"), (PROMOTIONAL_ROUTE, "1: promotional")),
            help_text="sendhttp's route; empty: transactional.",
        ),
    )
    # MSG91 report status codes onto ours.
    STATUS_MAP = {
        "1": Status.DELIVERED,
        # MSG91 does not say whether the operator ever had it; final either way.
        "2": Status.FAILED,
        # NDNC (the number is on the Do-Not-Disturb registry), blocked number, and the two
        # rejection codes: the operator or MSG91 refused it, which is what `rejected` means.
        "9": Status.REJECTED,
        "16": Status.REJECTED,
        "17": Status.REJECTED,
        "25": Status.REJECTED,
    }
    # 17 "Blocked number": the number opted out of this account's SMS (msg91.com guide "Exact
    # Information of The Delivery Report Status"). NDNC (9) is not an opt-out from us: the
    # national registry bars promotional traffic only. sendhttp documents no opt-out error.
    OPTED_OUT_STATUSES = frozenset({"17"})

    def authenticate(self, webhook: WebhookRequest) -> Verified:
        return verify_webhook_token(webhook, self.slug)

    def parse_inbound(self, webhook: WebhookRequest, verified: Verified) -> InboundSMS:
        """
        Virtual number / keyword forwarding. MSG91's help ("Virtual Number") documents the
        forwarding but not its field names, so a reasonable set is accepted: sender
        `sender`/`mobile`/`from`/`msisdn`/`number`, text `message`/`text`/`content`
        (else `keyword` alone), our number `inNumber`/`to`/`shortcode`/`vmn`/`longcode`,
        id `id`/`requestId`/`msgId`/`messageId`. JSON, form or query string.
        """
        data = request_fields(webhook)
        if any(name in data for name in BODY_FIELDS):
            body = first_of(data, *BODY_FIELDS, required=False)
        elif "keyword" in data:
            body = first_of(data, "keyword", required=False)
        else:
            raise MissingField("message")
        return InboundSMS(
            sender=first_of(data, *SENDER_FIELDS),
            recipient=first_of(data, *RECIPIENT_FIELDS),
            body=body,
            provider_message_id=first_of(data, *ID_FIELDS, required=False) or None,
            raw=data,
        )

    def parse_status(self, webhook: WebhookRequest, verified: Verified) -> list[StatusUpdate]:
        """
        Panel webhook v2 (form `data`) and v3 (flat JSON, an object or a list of them).
        One request id covers every number of one send, so each report keeps its
        `number` in `raw`. Docs: msg91.com help "How to use Webhook to get the delivery report".
        """
        reference = status_reference(webhook, verified, "")
        updates = []
        for report in _flat_reports(webhook):
            provider_status = first_of(report, "status")
            mapped = self.map_status(provider_status)
            description = first_of(report, "failedReason", "desc", required=False)
            updates.append(
                StatusUpdate(
                    status=mapped,
                    provider_status=provider_status,
                    provider_message_id=first_of(report, "requestId"),
                    reference=reference,
                    error_message="" if mapped == Status.DELIVERED else description,
                    # `date` has no zone in MSG91's documents; delivered_at falls back to arrival time.
                    raw=report,
                )
            )
        return updates

    def send(self, sms: OutboundSMS) -> SendResult:
        """POST form to sendhttp.php with `response=json`; success is `{"type":"success","message":"<request id>"}`."""
        if not settings.MSG91_AUTH_KEY:
            raise PermanentSendError("MSG91_AUTH_KEY must be set", code="not_configured")
        digits = sms.to.lstrip("+")
        form = {
            "authkey": settings.MSG91_AUTH_KEY,
            "mobiles": digits,
            "message": sms.body,
            "sender": sms.options.get("sender") or sms.sender,
            "route": str(sms.options.get("route") or TRANSACTIONAL_ROUTE),
            # 91 for India; 0 ("international") otherwise, with the country code in `mobiles`.
            "country": "91" if sms.to.startswith("+91") else "0",
            "response": "json",
        }
        if encoding_of(sms.body) == UCS2:
            form["unicode"] = "1"
        dlt_template_id = sms.options.get("dlt_template_id")
        if dlt_template_id:
            form["DLT_TE_ID"] = str(dlt_template_id)
        url = f"{settings.MSG91_API_BASE.rstrip('/')}/api/sendhttp.php"
        reply = http_call(
            "POST",
            url,
            data=form,
            timeout=settings.GATEWAY_TIMEOUT_SECONDS,
            secrets=[settings.MSG91_AUTH_KEY],
            service="MSG91",
        )
        request_id = _request_id(reply.text, exchanges=(reply.exchange,))
        return SendResult(provider_message_id=request_id, exchanges=(reply.exchange,))


def _flat_reports(webhook: WebhookRequest) -> list[dict[str, Any]]:
    """Every per-number report in the request, each with its send's fields (requestId, senderId...)."""
    # v3 by its declared JSON media type, v2 by its form (or query) field: never by sniffing the body.
    if is_json_media_type(webhook.content_type):
        payload = json_value(webhook.body)
    else:
        fields = request_fields(webhook)
        if "data" not in fields:
            raise MissingField("data")
        if not isinstance(fields["data"], str):
            raise WebhookBadRequest("'data' must be a JSON string", field="data")
        payload = json_value(fields["data"], field="data")
    items = payload if isinstance(payload, list) else [payload]
    reports = []
    for item in items:
        if not isinstance(item, dict):
            raise WebhookBadRequest("each report must be an object", field="data")
        if "report" not in item:
            reports.append(item)  # v3: already one number's report
            continue
        if not isinstance(item["report"], list):
            raise WebhookBadRequest("'report' must be a list", field="report")
        shared = {name: value for name, value in item.items() if name != "report"}
        for entry in item["report"]:
            if not isinstance(entry, dict):
                raise WebhookBadRequest("each of 'report' must be an object", field="report")
            reports.append({**shared, **entry})
    return reports


def _request_id(text: str, *, exchanges) -> str:
    """MSG91 answers 200 for refusals too: the body says which it was."""
    body = text.strip()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = str(data.get("message") or "")
        if str(data.get("type", "")).lower() == "success" and message:
            return message
        code = str(data.get("code") or "")
        error = TransientSendError if code in TRANSIENT_ERROR_CODES else PermanentSendError
        raise error(
            f"MSG91 refused the message: {message or body[:200]}", code=code or "msg91_error", exchanges=exchanges
        )
    if REQUEST_ID.fullmatch(body):
        return body
    raise PermanentSendError(f"MSG91 answered without a request id: {body[:200]}", code="no_id", exchanges=exchanges)

"""
Twilio Programmable Messaging (the facts relied on: docs/PROVIDERS.md, Twilio).

Webhooks are form-encoded and signed with `X-Twilio-Signature` (HMAC-SHA1 with the
account Auth Token, or HMAC-SHA256 with a SharedKey when
`X-Twilio-Webhooks-Signature-Settings` says so); the SDK's RequestValidator checks
both. Sends go through the SDK's REST client, whose HTTP is delivery.providers.http's;
TWILIO_API_BASE aims it at another origin (a local stand-in in tests, an edge proxy in
production).
"""

import logging
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import (
    HMAC_SHA1,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.rest import Client

from delivery.providers.base import (
    VOUCHED_WHOLE_REQUEST,
    InboundSMS,
    MissingField,
    OutboundSMS,
    PermanentSendError,
    Provider,
    ProviderOption,
    SendError,
    SendResult,
    StatusUpdate,
    Verified,
    WebhookAck,
    WebhookForbidden,
    WebhookRequest,
    first_of,
    form_data,
    is_json_media_type,
    request_data,
    status_reference,
    webhooks_open_without_secret,
)
from delivery.providers.http import HttpReply, http_call, send_error, setting_values
from delivery.statuses import Status

# A Messaging Service SID (not a secret: it names the service, the account token authorises).
MESSAGING_SERVICE_SID = r"MG[0-9a-fA-F]{32}"
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def signature_valid(secret: str, url: str, params: Any, signature: str, algorithm: str | None = HMAC_SHA1) -> bool:
    """
    Twilio's webhook signature, checked by the SDK (docs/PROVIDERS.md, Twilio: signatures).

    `params` is the form body as a QueryDict (repeated keys must survive), or the raw
    JSON body as a string, which the SDK checks against the URL's `bodySHA256`.
    """
    if not secret or not signature:
        return False
    return RequestValidator(secret).validate(url, params, signature, algorithm)


class _SdkHttpClient(HttpClient):
    """
    The SDK's HTTP, made through delivery.providers.http like every send (pooled, timed,
    recorded, masked), and sent to `api_base` instead of Twilio's host when set. Every
    answer goes back to the SDK, which parses it and raises its own errors; the replies
    stay here, for the channel log and for the Retry-After header the SDK's errors drop.
    One per send.
    """

    def __init__(self, *, api_base: str, timeout: float):
        super().__init__(logging.getLogger(__name__), is_async=False, timeout=timeout)
        self.api_base = api_base.rstrip("/")
        self.replies: list[HttpReply] = []

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        if self.api_base:
            parts = urlsplit(url)
            url = self.api_base + parts.path + (f"?{parts.query}" if parts.query else "")
        # As the SDK's own client does: JSON media types carry `data` as JSON, others as a form.
        as_json = (headers or {}).get("Content-Type") in ("application/json", "application/scim+json")
        reply = http_call(
            method,
            url,
            params=params,
            data=None if as_json else data,
            json=data if as_json else None,
            headers=headers,
            auth=auth,
            timeout=timeout or self.timeout,
            secrets=setting_values(TwilioProvider.SECRET_SETTINGS),
            service="Twilio",
            check=False,
        )
        self.replies.append(reply)
        return TwilioResponse(reply.status_code, reply.text, reply.headers)


class TwilioProvider(Provider):
    slug = "twilio"
    WEBHOOK_SECRET_SETTINGS = ("TWILIO_AUTH_TOKEN",)
    CREDENTIAL_HEADERS = (SIGNATURE_HEADER,)
    SECRET_SETTINGS = ("TWILIO_AUTH_TOKEN", "TWILIO_SHARED_KEY_SECRET")
    SEND_SETTINGS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
    SENSITIVE_HEADERS = (SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER)
    OPTIONS = (
        ProviderOption(
            "messaging_service_sid",
            "Messaging Service SID",
            pattern=MESSAGING_SERVICE_SID,
            help_text="MG followed by 32 hex digits: this shortcode's replies go through that Messaging "
            "Service (it picks the sender); empty: TWILIO_MESSAGING_SERVICE_SID, else the sender ID.",
        ),
    )
    # 21610: the recipient sent STOP to this sender, so Twilio refuses every send to it
    # (docs/PROVIDERS.md, Twilio: send).
    OPTED_OUT_ERROR_CODES = frozenset({"21610"})
    # Twilio's MessageStatus values (the SDK's MessageInstance.Status) in our words
    # (docs/PROVIDERS.md, Twilio: status callbacks).
    STATUS_MAP = {
        # Not yet with a carrier. No callback is sent for the initial status, and a
        # `queued` report never moves a message that the send already marked `sent`.
        "accepted": Status.QUEUED,
        "scheduled": Status.QUEUED,
        "queued": Status.QUEUED,
        "sending": Status.SENDING,
        "sent": Status.SENT,
        "delivered": Status.DELIVERED,
        "read": Status.DELIVERED,  # WhatsApp/RCS: read implies delivered
        "undelivered": Status.UNDELIVERED,
        # Some parts or recipients never arrived: the subscriber may not have the whole text.
        "partially_delivered": Status.UNDELIVERED,
        "failed": Status.FAILED,
        "canceled": Status.FAILED,  # a scheduled message cancelled before sending: it will never go
        # States of *inbound* messages: on an outbound report they say nothing about
        # progress, and `queued`, the lowest rank, moves nothing.
        "receiving": Status.QUEUED,
        "received": Status.QUEUED,
    }

    def webhook_refusal(self) -> str | None:
        # A SharedKey secret alone is enough for the requests signed with it.
        if settings.TWILIO_SHARED_KEY_SECRET:
            return None
        return super().webhook_refusal()

    def authenticate(self, webhook: WebhookRequest) -> Verified:
        signature_settings = webhook.headers.get(SIGNATURE_SETTINGS_HEADER, "")
        if signature_settings:
            # SharedKey signing (Webhooks v1): the header names the algorithm; the key is
            # the SharedKey secret, never the Auth Token.
            secret_name, secret = "TWILIO_SHARED_KEY_SECRET", settings.TWILIO_SHARED_KEY_SECRET
            algorithm = get_signature_algorithm(signature_settings)
        else:
            secret_name, secret = "TWILIO_AUTH_TOKEN", settings.TWILIO_AUTH_TOKEN
            algorithm = HMAC_SHA1
        if not secret:
            # The other scheme's secret is set (webhook_refusal passed): this one is not.
            if webhooks_open_without_secret():
                return Verified(VOUCHED_WHOLE_REQUEST)
            raise WebhookForbidden(f"{secret_name} is not configured; Twilio webhooks signed this way are refused")
        signature = webhook.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise WebhookForbidden(f"missing {SIGNATURE_HEADER}")
        if not signature_valid(secret, webhook.url, self._signed_params(webhook), signature, algorithm):
            raise WebhookForbidden(f"wrong {SIGNATURE_HEADER}")
        # The signature covers the URL with its query, and the body.
        return Verified(VOUCHED_WHOLE_REQUEST)

    @staticmethod
    def _signed_params(webhook: WebhookRequest) -> Any:
        """
        What the signature covers, chosen by the declared Content-Type exactly as
        `request_data` chooses what to parse: the form (urlencoded or multipart) or the raw
        JSON body. Any other media type is refused here, before a signature could pass over
        parameters that the parse would then not read.
        """
        if not is_json_media_type(webhook.content_type):
            # The QueryDict, not a dict: Twilio signs every value of a repeated key.
            return form_data(webhook)
        # JSON bodies are signed through the URL's bodySHA256; the SDK takes that path
        # only for a string body and a URL carrying the hash, and anything else cannot pass.
        if "bodySHA256" not in webhook.query:
            raise WebhookForbidden("JSON body without bodySHA256 in the URL")
        try:
            return webhook.body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookForbidden("JSON body is not UTF-8") from None

    def parse_inbound(self, webhook: WebhookRequest, verified: Verified) -> InboundSMS:
        """
        Incoming message webhook (form-encoded).
        Docs: https://www.twilio.com/docs/messaging/guides/webhook-request
        """
        data = request_data(webhook)
        if "Body" not in data:
            # An empty text is a message too (it gets the menu); a missing field is not.
            raise MissingField("Body")
        return InboundSMS(
            sender=first_of(data, "From"),
            recipient=first_of(data, "To"),
            body=first_of(data, "Body", required=False),
            # SmsSid is the deprecated duplicate some older payloads still lead with.
            provider_message_id=first_of(data, "MessageSid", "SmsMessageSid", "SmsSid"),
            raw=data,
        )

    def parse_status(self, webhook: WebhookRequest, verified: Verified) -> list[StatusUpdate]:
        """
        Status callback (form-encoded), one message per request. `RawDlrDoneDate` has no
        time zone, so the report's time is when we received it.
        Docs: https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks
        """
        data = request_data(webhook)
        provider_status = first_of(data, "MessageStatus", "SmsStatus")
        update = StatusUpdate(
            status=self.map_status(provider_status),
            provider_status=provider_status,
            provider_message_id=first_of(data, "MessageSid", "SmsSid"),
            reference=status_reference(webhook, verified, ""),
            error_code=first_of(data, "ErrorCode", required=False),
            error_message=first_of(data, "ErrorMessage", required=False),
            raw=data,
        )
        return [update]

    def send(self, sms: OutboundSMS) -> SendResult:
        """
        Create a Message resource. Docs: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
        """
        if not settings.TWILIO_ACCOUNT_SID or not settings.TWILIO_AUTH_TOKEN:
            raise PermanentSendError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set", code="not_configured")
        # A client per send: it keeps this send's replies, and the provider stays stateless.
        http_client = _SdkHttpClient(api_base=settings.TWILIO_API_BASE, timeout=settings.GATEWAY_TIMEOUT_SECONDS)
        client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)
        params: dict[str, Any] = {"to": sms.to, "body": sms.body}
        messaging_service_sid = sms.options.get("messaging_service_sid") or settings.TWILIO_MESSAGING_SERVICE_SID
        if messaging_service_sid:
            # The service picks the sender from its pool and applies its opt-out rules.
            params["messaging_service_sid"] = messaging_service_sid
        else:
            params["from_"] = sms.options.get("sender") or settings.TWILIO_FROM or sms.sender
        if sms.callback_url:
            params["status_callback"] = sms.callback_url
        # A call that got no answer raises TransientSendError from the helper, through the SDK.
        try:
            message = client.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._api_error(exc, http_client.replies) from exc
        return SendResult(
            provider_message_id=message.sid, exchanges=tuple(reply.exchange for reply in http_client.replies)
        )

    @staticmethod
    def _api_error(exc: TwilioRestException | TwilioServiceException, replies: list[HttpReply]) -> SendError:
        """
        The SDK's error for the last answer, sorted by its status as every send's is (5xx
        and 429 retried), under Twilio's own error code: 21211 bad number, 21610 opted out.
        """
        # str(exc) paints ANSI colours when stderr is a terminal; build the text ourselves.
        detail = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
        text = f"Twilio answered {exc.status} (code {exc.code}): {detail}"
        exchanges = tuple(reply.exchange for reply in replies)
        return send_error(replies[-1], text, code=str(exc.code), exchanges=exchanges)

    def ack(self) -> WebhookAck:
        # Empty TwiML: reply later through the API, never in the webhook's answer.
        return WebhookAck(content_type="text/xml", body=TWIML_EMPTY)

"""
Twilio Programmable Messaging (the facts relied on: docs/PROVIDERS.md, Twilio).

Webhooks are form-encoded and signed with `X-Twilio-Signature` (HMAC-SHA1 with the
account Auth Token, or HMAC-SHA256 with a SharedKey when
`X-Twilio-Webhooks-Signature-Settings` says so); the SDK's RequestValidator checks
both. Sends go through the SDK's REST client; TWILIO_API_BASE aims it at another
origin (a local stand-in in tests, an edge proxy in production).
"""

import json
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
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
    ExchangeRecorder,
    InboundSMS,
    MissingField,
    OutboundSMS,
    PermanentSendError,
    Provider,
    SendResult,
    StatusUpdate,
    TransientSendError,
    WebhookForbidden,
    first_of,
    form_data,
    is_json_media_type,
    public_url,
    request_data,
    retry_after_seconds,
    webhooks_open_without_secret,
)

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


class _RebasedHttpClient(TwilioHttpClient):
    """
    The SDK's own HTTP client, sent to `api_base` instead of Twilio's host when set.
    It keeps the last response because the SDK's exceptions drop the headers, and
    Retry-After lives there.
    """

    def __init__(self, *, api_base: str, timeout: float):
        super().__init__(timeout=timeout)
        self.api_base = api_base.rstrip("/")
        self.last_url = ""
        self.last_response: TwilioResponse | None = None

    def request(self, method: str, url: str, *args, **kwargs) -> TwilioResponse:
        if self.api_base:
            parts = urlsplit(url)
            url = self.api_base + parts.path + (f"?{parts.query}" if parts.query else "")
        self.last_url = url
        self.last_response = None
        self.last_response = super().request(method, url, *args, **kwargs)
        return self.last_response


class TwilioProvider(Provider):
    slug = "twilio"
    WEBHOOK_SECRET_SETTINGS = ("TWILIO_AUTH_TOKEN",)
    CREDENTIAL_HEADERS = (SIGNATURE_HEADER,)
    SECRET_SETTINGS = ("TWILIO_AUTH_TOKEN", "TWILIO_SHARED_KEY_SECRET")
    SEND_SETTINGS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
    SENSITIVE_HEADERS = (SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER)
    # 21610: the recipient sent STOP to this sender, so Twilio refuses every send to it
    # (docs/PROVIDERS.md, Twilio: send).
    OPTED_OUT_ERROR_CODES = frozenset({"21610"})
    # Twilio's MessageStatus values (the SDK's MessageInstance.Status) in our words
    # (docs/PROVIDERS.md, Twilio: status callbacks).
    STATUS_MAP = {
        # Not yet with a carrier. No callback is sent for the initial status, and a
        # `queued` report never moves a message that the send already marked `sent`.
        "accepted": "queued",
        "scheduled": "queued",
        "queued": "queued",
        "sending": "sending",
        "sent": "sent",
        "delivered": "delivered",
        "read": "delivered",  # WhatsApp/RCS: read implies delivered
        "undelivered": "undelivered",
        # Some parts or recipients never arrived: the subscriber may not have the whole text.
        "partially_delivered": "undelivered",
        "failed": "failed",
        "canceled": "failed",  # a scheduled message cancelled before sending: it will never go
        # States of *inbound* messages: on an outbound report they say nothing about
        # progress, and `queued`, the lowest rank, moves nothing.
        "receiving": "queued",
        "received": "queued",
    }

    def authenticate(self, request: HttpRequest) -> None:
        signature_settings = request.headers.get(SIGNATURE_SETTINGS_HEADER, "")
        if signature_settings:
            # SharedKey signing (Webhooks v1): the header names the algorithm; the key is
            # the SharedKey secret, never the Auth Token.
            secret_name, secret = "TWILIO_SHARED_KEY_SECRET", settings.TWILIO_SHARED_KEY_SECRET
            algorithm = get_signature_algorithm(signature_settings)
        else:
            secret_name, secret = "TWILIO_AUTH_TOKEN", settings.TWILIO_AUTH_TOKEN
            algorithm = HMAC_SHA1
        if not secret:
            if webhooks_open_without_secret():
                return
            raise WebhookForbidden(f"{secret_name} is not configured; Twilio webhooks are refused")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise WebhookForbidden(f"missing {SIGNATURE_HEADER}")
        if not signature_valid(secret, public_url(request), self._signed_params(request), signature, algorithm):
            raise WebhookForbidden(f"wrong {SIGNATURE_HEADER}")

    @staticmethod
    def _signed_params(request: HttpRequest) -> Any:
        """
        What the signature covers, chosen by the declared Content-Type exactly as
        `request_data` chooses what to parse: the form (urlencoded or multipart) or the raw
        JSON body. Any other media type is refused here, before a signature could pass over
        parameters that the parse would then not read.
        """
        if not is_json_media_type(request.content_type):
            # The QueryDict, not a dict: Twilio signs every value of a repeated key.
            return form_data(request)
        # JSON bodies are signed through the URL's bodySHA256; the SDK takes that path
        # only for a string body and a URL carrying the hash, and anything else cannot pass.
        if "bodySHA256" not in request.GET:
            raise WebhookForbidden("JSON body without bodySHA256 in the URL")
        try:
            return request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookForbidden("JSON body is not UTF-8") from None

    def parse_inbound(self, request: HttpRequest) -> InboundSMS:
        """
        Incoming message webhook (form-encoded).
        Docs: https://www.twilio.com/docs/messaging/guides/webhook-request
        """
        data = request_data(request)
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

    def parse_status(self, request: HttpRequest) -> list[StatusUpdate]:
        """
        Status callback (form-encoded), one message per request. `RawDlrDoneDate` has no
        time zone, so the report's time is when we received it.
        Docs: https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks
        """
        data = request_data(request)
        provider_status = first_of(data, "MessageStatus", "SmsStatus")
        update = StatusUpdate(
            status=self.map_status(provider_status),
            provider_status=provider_status,
            provider_message_id=first_of(data, "MessageSid", "SmsSid"),
            reference=request.GET.get("ref", ""),
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
        # A client per send: the recorder hooks its session, and the provider stays stateless.
        http_client = _RebasedHttpClient(api_base=settings.TWILIO_API_BASE, timeout=settings.GATEWAY_TIMEOUT_SECONDS)
        recorder = ExchangeRecorder().attach(http_client.session)
        client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)
        params: dict[str, Any] = {"to": sms.to, "body": sms.body}
        if settings.TWILIO_MESSAGING_SERVICE_SID:
            # The service picks the sender from its pool and applies its opt-out rules.
            params["messaging_service_sid"] = settings.TWILIO_MESSAGING_SERVICE_SID
        else:
            params["from_"] = sms.options.get("sender") or settings.TWILIO_FROM or sms.sender
        if sms.callback_url:
            params["status_callback"] = sms.callback_url
        try:
            message = client.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._api_error(exc, http_client, recorder) from exc
        except requests.RequestException as exc:
            recorder.failed("POST", http_client.last_url, exc)
            code = "timeout" if isinstance(exc, requests.Timeout) else "connection"
            raise TransientSendError(f"Twilio {code}: {exc}", code=code, exchanges=tuple(recorder.exchanges)) from exc
        finally:
            http_client.session.close()
        return SendResult(
            provider_message_id=message.sid,
            raw=_json(http_client.last_response),
            exchanges=tuple(recorder.exchanges),
        )

    @staticmethod
    def _api_error(
        exc: TwilioRestException | TwilioServiceException,
        http_client: _RebasedHttpClient,
        recorder: ExchangeRecorder,
    ) -> TransientSendError | PermanentSendError:
        """5xx and 429 are worth retrying; any other 4xx (21211 bad number, 21610 opted out) will not get better."""
        # str(exc) paints ANSI colours when stderr is a terminal; build the text ourselves.
        detail = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
        text = f"Twilio answered {exc.status} (code {exc.code}): {detail}"
        exchanges = tuple(recorder.exchanges)
        if exc.status == 429 or exc.status >= 500:
            headers = http_client.last_response.headers if http_client.last_response is not None else None
            retry_after = retry_after_seconds(headers.get("Retry-After") if headers else None)
            return TransientSendError(text, code=str(exc.code), retry_after=retry_after, exchanges=exchanges)
        return PermanentSendError(text, code=str(exc.code), exchanges=exchanges)

    def ack(self) -> HttpResponse:
        # Empty TwiML: reply later through the API, never in the webhook's answer.
        return HttpResponse(TWIML_EMPTY, content_type="text/xml")


def _json(response: TwilioResponse | None) -> dict[str, Any]:
    try:
        data = json.loads(response.text) if response is not None else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

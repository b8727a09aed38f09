"""
The provider boundary: HTTP in, dataclasses out, and back.

A provider module turns an aggregator's webhook into an `InboundSMS` or a
`StatusUpdate`, and an `OutboundSMS` into an API call. It never imports a model.
"""

import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


@dataclass(frozen=True)
class InboundSMS:
    sender: str  # the subscriber's number, as the provider wrote it
    recipient: str  # our shortcode
    body: str
    provider_message_id: str | None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusUpdate:
    status: str | None  # one of Message.Status values; None when the provider's word is unknown
    provider_status: str  # the provider's own word
    provider_message_id: str = ""
    reference: str = ""  # our Message.uuid, from the callback URL's ?ref=
    error_code: str = ""
    error_message: str = ""
    at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundSMS:
    reference: str  # our Message.uuid
    to: str  # E.164
    sender: str  # shortcode or sender ID
    body: str
    callback_url: str | None  # status webhook, with ?ref=<reference>
    options: dict[str, Any] = field(default_factory=dict)  # Shortcode.provider_config


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    raw: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    status_code = 400


class WebhookForbidden(ProviderError):
    """Bad or missing signature, unknown token, or a source address not allowed."""

    status_code = 403


class WebhookBadRequest(ProviderError):
    """The body cannot be read, or a required field is missing or invalid."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class MissingField(WebhookBadRequest):
    def __init__(self, field: str):
        super().__init__(f"missing required field '{field}'", field=field)


class SendError(Exception):
    """A provider refused or failed a send. `transient` errors are retried."""

    transient = False

    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class TransientSendError(SendError):
    transient = True


class PermanentSendError(SendError):
    transient = False


class Provider(ABC):
    """
    Interface every provider implements. Stateless: one instance serves all requests.

    STATUS_MAP maps the provider's status words (lower-case) onto Message.Status values;
    words in IGNORED are known but move nothing.
    """

    slug: ClassVar[str]
    receives_webhooks: ClassVar[bool] = True
    STATUS_MAP: ClassVar[dict[str, str]] = {}
    IGNORED: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def authenticate(self, request: HttpRequest) -> None: ...

    @abstractmethod
    def parse_inbound(self, request: HttpRequest) -> InboundSMS: ...

    @abstractmethod
    def parse_status(self, request: HttpRequest) -> StatusUpdate: ...

    @abstractmethod
    def send(self, sms: OutboundSMS) -> SendResult: ...

    def ack(self) -> HttpResponse:
        return JsonResponse({"status": "accepted"})

    def looks_like_inbound(self, request: HttpRequest) -> bool:
        """For the provider-less /sms-handler and /sms-dlr: does this request come from us?"""
        return False

    def map_status(self, provider_status: str) -> str | None:
        return self.STATUS_MAP.get((provider_status or "").strip().lower())


# Helpers shared by provider modules -------------------------------------------------


def request_data(request: HttpRequest) -> dict[str, Any]:
    """
    The webhook's fields as a flat dict, from a JSON object, a form body or the query.

    Raises WebhookBadRequest for a body that is neither.
    """
    content_type = (request.content_type or "").lower()
    raw = request.body
    if request.method == "GET":
        return dict(request.GET.items())
    if "json" in content_type or (raw[:1] in (b"{", b"[") and "form" not in content_type):
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise WebhookBadRequest(f"body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise WebhookBadRequest("body must be a JSON object")
        return data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookBadRequest("body is not UTF-8") from None
    if not text.strip():
        raise WebhookBadRequest("empty body")
    pairs = parse_qsl(text, keep_blank_values=True)
    if not pairs:
        raise WebhookBadRequest("body is neither JSON nor form-encoded")
    return dict(pairs)


def first_of(data: dict[str, Any], *names: str, required: bool = True) -> str:
    """The first present, non-empty field among `names`, as a string."""
    for name in names:
        value = data.get(name)
        if value is not None and value != "":
            if isinstance(value, (dict, list)):
                raise WebhookBadRequest(f"field '{name}' must be a string", field=name)
            return str(value)
    if required:
        raise MissingField(names[0])
    return ""


def verify_hmac_sha256_hex(secret: str, raw_body: bytes, signature: str) -> bool:
    """True when `signature` is the hex HMAC-SHA256 of the body with `secret`."""
    if not secret or not signature:
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def constant_time_equals(expected: str, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def webhooks_open_without_secret() -> bool:
    """With DEBUG on, a provider whose secret is unset accepts webhooks (local development)."""
    return settings.DEBUG

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
class HttpExchange:
    """One HTTP call to a provider, as the channel log stores it (redacted there, not here)."""

    method: str
    url: str
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str = ""
    status_code: int | None = None
    response_body: str = ""
    elapsed_ms: int = 0
    error: str = ""


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    raw: dict[str, Any] = field(default_factory=dict)
    exchanges: tuple[HttpExchange, ...] = ()


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

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        retry_after: float | None = None,
        exchanges: tuple[HttpExchange, ...] = (),
    ):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        self.exchanges = exchanges


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
    # Some aggregators report with GET (Gupshup's delivery reports); others only POST.
    webhook_methods: ClassVar[frozenset[str]] = frozenset({"POST"})
    # Settings of which at least one must be set for webhooks to be accepted with DEBUG off.
    WEBHOOK_SECRET_SETTINGS: ClassVar[tuple[str, ...]] = ()
    # Every setting this provider reads whose value is a secret: masked wherever text is
    # stored or logged (delivery.redaction), declared when the registry is built.
    SECRET_SETTINGS: ClassVar[tuple[str, ...]] = ()
    # Settings that must all be set for sends to work (its API credentials).
    SEND_SETTINGS: ClassVar[tuple[str, ...]] = ()
    # Request headers whose values derive from a secret (signatures): masked by name.
    SENSITIVE_HEADERS: ClassVar[tuple[str, ...]] = ()
    STATUS_MAP: ClassVar[dict[str, str]] = {}
    IGNORED: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def authenticate(self, request: HttpRequest) -> None: ...

    @abstractmethod
    def parse_inbound(self, request: HttpRequest) -> InboundSMS: ...

    @abstractmethod
    def parse_status(self, request: HttpRequest) -> list[StatusUpdate]:
        """One webhook may carry several reports (MSG91 v2, Sinch batch reports)."""

    @abstractmethod
    def send(self, sms: OutboundSMS) -> SendResult: ...

    def ack(self) -> HttpResponse:
        return JsonResponse({"status": "accepted"})

    def claims(self, request: HttpRequest) -> bool:
        """For the provider-less /sms-handler and /sms-dlr: does this request look like ours?"""
        return False

    def webhook_refusal(self) -> str | None:
        """Why this provider refuses every webhook right now (its secret is unset), or None."""
        if not self.receives_webhooks or webhooks_open_without_secret():
            return None
        names = self.WEBHOOK_SECRET_SETTINGS
        if names and not any(getattr(settings, name, "") for name in names):
            return f"{' or '.join(names)} not set: every webhook is refused"
        return None

    def send_refusal(self) -> str | None:
        """Why this provider cannot send right now (a credential is unset), or None."""
        missing = [name for name in self.SEND_SETTINGS if not getattr(settings, name, "")]
        if missing:
            return f"{', '.join(missing)} not set: every send fails"
        return None

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


def public_url(request: HttpRequest) -> str:
    """
    The URL the aggregator called, as it signed it: PUBLIC_BASE_URL plus the path and
    query as received. Behind a TLS-terminating proxy the request's own scheme and host
    are not what the aggregator saw.
    """
    base = settings.PUBLIC_BASE_URL or f"{request.scheme}://{request.get_host()}"
    return base + request.get_full_path()


def verify_webhook_token(request: HttpRequest, slug: str) -> None:
    """
    For providers that sign nothing: `?token=` must equal <SLUG>_WEBHOOK_TOKEN. Unset
    token: refused unless DEBUG is on (fail closed).
    """
    expected = getattr(settings, f"{slug.upper()}_WEBHOOK_TOKEN", "")
    if not expected:
        if webhooks_open_without_secret():
            return
        raise WebhookForbidden(f"{slug.upper()}_WEBHOOK_TOKEN is not configured; webhooks are refused")
    if not constant_time_equals(expected, request.GET.get("token")):
        raise WebhookForbidden("missing or wrong ?token=")


def exchange_from_response(response, *, error: str = "") -> HttpExchange:
    """Describe a `requests` response (and the request that caused it) for the channel log."""
    request = response.request
    body = request.body or ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return HttpExchange(
        method=request.method or "",
        url=request.url or "",
        request_headers=dict(request.headers),
        request_body=body,
        status_code=response.status_code,
        response_body=response.text[:10_000],
        elapsed_ms=int(response.elapsed.total_seconds() * 1000),
        error=error,
    )


class ExchangeRecorder:
    """
    Collects every HTTP exchange a `requests.Session` makes, through the documented
    response hook. SDK-based providers (twilio, plivo) attach it to the SDK's session.
    """

    def __init__(self):
        self.exchanges: list[HttpExchange] = []

    def attach(self, session) -> "ExchangeRecorder":
        session.hooks.setdefault("response", []).append(self._record)
        return self

    def _record(self, response, *args, **kwargs):
        self.exchanges.append(exchange_from_response(response))
        return response

    def failed(self, method: str, url: str, error: Exception) -> None:
        """A call that got no response (timeout, refused connection)."""
        self.exchanges.append(HttpExchange(method=method, url=url, error=f"{error.__class__.__name__}: {error}"))


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (the HTTP-date form is treated as absent)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

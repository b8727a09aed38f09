"""
The provider boundary: HTTP in, dataclasses out, and back.

A provider module turns an aggregator's webhook into an `InboundSMS` or a
`StatusUpdate`, and an `OutboundSMS` into an API call. It never imports a model.
"""

import hashlib
import hmac
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import BadRequest, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.http.multipartparser import MultiPartParserError

from delivery.redaction import redact


@dataclass(frozen=True)
class InboundSMS:
    sender: str  # the subscriber's number, as the provider wrote it
    recipient: str  # our shortcode
    body: str
    provider_message_id: str | None
    raw: dict[str, Any] = field(default_factory=dict)
    # For a signed request: its signature, which a replay repeats and a new request does
    # not, and how long that signature is accepted (an id-less replay is dropped that long).
    replay_key: str = ""
    replay_window_seconds: int = 0


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
        # Masked here, once: the text is stored (Message.error_message) and logged, and an
        # underlying error's text may carry a credential (a URL with its query string).
        super().__init__(redact(message))
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
    # Environment variables it reads at send time whose values are secrets (adapters' {env:NAME}).
    SECRET_ENV: ClassVar[tuple[str, ...]] = ()
    # Settings that must all be set for sends to work (its API credentials).
    SEND_SETTINGS: ClassVar[tuple[str, ...]] = ()
    # Request headers whose values derive from a secret (signatures): masked by name.
    SENSITIVE_HEADERS: ClassVar[tuple[str, ...]] = ()
    # Request headers that carry its webhook credential (a signature, a shared secret):
    # on /sms-handler and /sms-dlr, a request presenting one is this provider's to prove.
    CREDENTIAL_HEADERS: ClassVar[tuple[str, ...]] = ()
    STATUS_MAP: ClassVar[dict[str, str]] = {}
    IGNORED: ClassVar[frozenset[str]] = frozenset()
    # Error codes (of a refused send or a delivery report) that mean the number opted out
    # at the carrier or aggregator: the number goes on our suppression list (Twilio 21610).
    OPTED_OUT_ERROR_CODES: ClassVar[frozenset[str]] = frozenset()
    # The same for providers whose reports carry the reason as a status code (MSG91).
    OPTED_OUT_STATUSES: ClassVar[frozenset[str]] = frozenset()

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
        """
        For the provider-less /sms-handler and /sms-dlr: does the request present this
        provider's credential? One of its CREDENTIAL_HEADERS, or `?token=` equal to its
        <SLUG>_WEBHOOK_TOKEN. Never the payload's shape, which anyone can imitate.
        """
        if any(request.headers.get(name) for name in self.CREDENTIAL_HEADERS):
            return True
        token = getattr(settings, f"{self.slug.upper()}_WEBHOOK_TOKEN", "")
        return constant_time_equals(token, request.GET.get("token"))

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

    def config_errors(self, options: dict[str, Any]) -> list[str]:
        """What is wrong with a shortcode's provider options for this provider (checked when staff save them)."""
        return literal_credential_errors(options)

    def map_status(self, provider_status: str) -> str | None:
        return self.STATUS_MAP.get((provider_status or "").strip().lower())

    def reports_opt_out(self, *, error_code: str, provider_status: str = "") -> bool:
        """Does this error code (or report status) say the number opted out at the carrier?"""
        return (error_code or "").strip() in self.OPTED_OUT_ERROR_CODES or (
            (provider_status or "").strip().lower() in self.OPTED_OUT_STATUSES
        )


# Helpers shared by provider modules -------------------------------------------------


# Deeper than any provider's payload (Sinch's reports nest 3 levels): anything more is
# refused before the parser recurses into it.
JSON_MAX_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")
FORM_MEDIA_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
ACCEPTED_MEDIA_TYPES = "application/json, application/x-www-form-urlencoded or multipart/form-data"


def is_json_media_type(content_type: str | None) -> bool:
    """application/json, text/json and the structured `+json` types (application/vnd.x+json)."""
    media = (content_type or "").strip().lower()
    return media in ("application/json", "text/json") or (media.startswith("application/") and media.endswith("+json"))


def is_form_media_type(content_type: str | None) -> bool:
    return (content_type or "").strip().lower() in FORM_MEDIA_TYPES


def json_value(raw: bytes | str, *, field: str | None = None) -> Any:
    """
    Any JSON value from `raw` (UTF-8), nested at most JSON_MAX_DEPTH deep. The depth is
    counted on the brackets outside strings, so a hostile body never reaches the
    recursive parser. Raises WebhookBadRequest naming `field` (None: the body).
    """
    what = f"field '{field}'" if field else "body"
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError:
        raise WebhookBadRequest(f"{what} is not UTF-8", field=field) from None
    depth = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > JSON_MAX_DEPTH:
            raise WebhookBadRequest(f"{what} is JSON nested deeper than {JSON_MAX_DEPTH} levels", field=field)
    try:
        return json.loads(text)
    except ValueError as exc:  # also the int-digits limit on a huge number
        raise WebhookBadRequest(f"{what} is not valid JSON: {exc}", field=field) from None
    except RecursionError:
        raise WebhookBadRequest(f"{what} is JSON nested too deeply", field=field) from None


def form_data(request: HttpRequest) -> QueryDict:
    """
    The fields of a urlencoded or multipart body, as Django parsed them: the very object
    form signatures (Twilio, Plivo) are checked over, so what is parsed is what was signed.

    Raises WebhookBadRequest for another media type or a body Django cannot parse. Django
    answers an empty QueryDict on every read after a parse error; the error is kept on the
    request so that every later reader (the parse after the signature check) sees it too.
    """
    if not is_form_media_type(request.content_type):
        raise WebhookBadRequest(
            f"Content-Type {request.content_type or '(none)'} is not a form: "
            "send application/x-www-form-urlencoded or multipart/form-data"
        )
    error = getattr(request, "form_error", None)
    if error is None:
        try:
            return request.POST
        except MultiPartParserError as exc:
            error = f"malformed multipart body: {exc}"
        except (BadRequest, TooManyFieldsSent, TooManyFilesSent) as exc:
            error = f"unreadable form body: {exc}"
        request.form_error = error
    raise WebhookBadRequest(error)


def request_data(request: HttpRequest) -> dict[str, Any]:
    """
    The webhook's fields as a flat dict, read as the declared Content-Type says: a JSON
    object (JSON media types), the form (urlencoded or multipart; the last value of a
    repeated field), or the query (GET). The body is never sniffed: a signature checked
    over the form must not be followed by a parse of the same bytes as JSON.

    Raises WebhookBadRequest for another media type or a body that does not parse.
    """
    if request.method == "GET":
        return dict(request.GET.items())
    if is_json_media_type(request.content_type):
        data = json_value(request.body)
        if not isinstance(data, dict):
            raise WebhookBadRequest("body must be a JSON object")
        return data
    if not is_form_media_type(request.content_type):
        raise WebhookBadRequest(
            f"Content-Type {request.content_type or '(none)'} is not accepted; send {ACCEPTED_MEDIA_TYPES}"
        )
    form = form_data(request)
    if not form:
        raise WebhookBadRequest("empty body: no form fields")
    return form.dict()


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


def _utf8(text: str) -> bytes | None:
    """`text` as UTF-8, or None for one that has none (a lone surrogate)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def verify_hmac_sha256_hex(secret: str, raw_body: bytes, signature: str) -> bool:
    """True when `signature` is the hex HMAC-SHA256 of the body with `secret`."""
    if not secret or not signature:
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    # Compared as bytes: compare_digest refuses non-ASCII str, and a header may carry any.
    given = _utf8(signature.strip().lower())
    return given is not None and hmac.compare_digest(expected.encode(), given)


def constant_time_equals(expected: str, given: str | None) -> bool:
    if not expected or not given:
        return False
    given_bytes = _utf8(given)
    return given_bytes is not None and hmac.compare_digest(expected.encode(), given_bytes)


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


DEFAULT_PORTS = {"http": 80, "https": 443}


def url_origin(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-case, the scheme's default port left out; "" when it has none."""
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    scheme = parts.scheme.lower()
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def outbound_url_refusal(url: str, allowed_origins: Iterable[str]) -> str | None:
    """
    Why our credentials may not go to `url`, or None. Staff choose a shortcode's
    outbound URL, and the provider's key travels with the request: only an origin
    (scheme, host and port) the deployment allows may receive it. An allowed origin
    written `scheme://host:*` allows every port of that host.
    """
    entries = [str(origin).strip().rstrip("/") for origin in allowed_origins]
    any_port = {entry[:-2].lower() for entry in entries if entry.endswith(":*")}
    allowed = {url_origin(entry) for entry in entries if not entry.endswith(":*")} - {""}
    origin = url_origin(url)
    if origin and (origin in allowed or origin.rsplit(":", 1)[0] in any_port or origin in any_port):
        return None
    allowed |= {f"{entry}:*" for entry in any_port}
    return f"outbound URL {url_origin(url) or url!r} is not an allowed origin ({', '.join(sorted(allowed)) or 'none'})"


# Option names that would hold a credential. Shortcode options are staff-edited data
# shown in the admin: a credential there is a name of an environment variable (`*_env`).
CREDENTIAL_OPTION = re.compile(r"key|token|secret|password|passwd|auth|credential", re.IGNORECASE)


def literal_credential_errors(options: Any, path: str = "") -> list[str]:
    """Options (nested too) whose names say they hold a credential but are not `*_env` references."""
    errors: list[str] = []
    if isinstance(options, dict):
        for name, value in options.items():
            where = f"{path}.{name}" if path else str(name)
            if CREDENTIAL_OPTION.search(str(name)) and not str(name).endswith("_env"):
                errors.append(
                    f"'{where}' would hold a credential: options name environment variables ('{name}_env'), "
                    "never secrets"
                )
            else:
                errors.extend(literal_credential_errors(value, where))
    elif isinstance(options, list):
        for index, value in enumerate(options):
            errors.extend(literal_credential_errors(value, f"{path}.{index}"))
    return errors


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (the HTTP-date form is treated as absent)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# What a webhook's authentication vouched for. `authenticate` records it on the request,
# `parse_status` reads it: a signature over the body alone says nothing about the URL's
# query, so an unsigned `?ref=` must not choose the message a report moves.
VOUCHED_WHOLE_REQUEST = "whole-request"  # a token, a shared-secret header, a signature over the URL
VOUCHED_BODY_ONLY = "body-only"  # an HMAC over the raw body


def webhook_vouched_record(request: HttpRequest, scope: str) -> None:
    request.webhook_vouched = scope


def status_reference(request: HttpRequest, body_reference: str) -> str:
    """
    Our reference (Message.uuid) for a status report, from `?ref=` or the body.

    When the whole request is vouched for, `?ref=` comes first. When only the body is
    signed, the body's reference wins, a `?ref=` that disagrees with it is refused (a
    captured report replayed at another message), and a `?ref=` alone is ignored, so the
    provider's message id does the matching. A request nobody recorded counts as body-only.
    """
    query_reference = request.GET.get("ref", "")
    if getattr(request, "webhook_vouched", VOUCHED_BODY_ONLY) == VOUCHED_WHOLE_REQUEST:
        return query_reference or body_reference
    if query_reference and body_reference and query_reference.strip().lower() != body_reference.strip().lower():
        raise WebhookForbidden("?ref= disagrees with the signed reference in the body")
    return body_reference

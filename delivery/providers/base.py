"""
The provider boundary: webhooks in, dataclasses out, and back.

A provider module has two halves. Receiving turns an aggregator's webhook, given as a
`WebhookRequest` whatever carried it, into an `InboundSMS` or `StatusUpdate`s
(`authenticate`, then `parse_inbound` / `parse_status`, then `ack`). Sending turns an
`OutboundSMS` into an API call. It never imports a model.
"""

import hashlib
import hmac
import io
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http import HttpRequest, QueryDict
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.datastructures import CaseInsensitiveMapping

from delivery.redaction import redact
from delivery.statuses import Status


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
    status: Status | None  # None when the provider's word is unknown
    provider_status: str  # the provider's own word
    provider_message_id: str = ""
    reference: str = ""  # our Message.uuid, from the callback URL's ?ref=
    error_code: str = ""
    error_message: str = ""
    at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookRequest:
    """
    One webhook as it arrived, whatever carried it: the receiving half of the contract
    reads this, never a Django request, so another transport builds one and the same
    provider code authenticates and parses it. Built once per request
    (`webhook_request_from` for HTTP, `webhook_request` from parts) and never changed.

    `form` holds the fields of a urlencoded or multipart body as the signatures over
    forms (Twilio, Plivo) see them; it is empty for other media types, and None with
    `form_error` saying why when the body claims to be a form but cannot be read.
    """

    method: str
    url: str  # as the aggregator signed it: PUBLIC_BASE_URL + path + query
    path: str
    query: QueryDict
    headers: CaseInsensitiveMapping
    body: bytes = b""
    content_type: str = ""  # the media type, without parameters
    form: QueryDict | None = field(default_factory=QueryDict)
    form_error: str = ""
    remote_addr: str = ""  # the caller, as the transport believes it (behind trusted proxies)


# What a webhook's authentication vouched for. `parse_status` reads it: a signature over
# the body alone says nothing about the URL's query, so an unsigned `?ref=` must not
# choose the message a report moves.
VOUCHED_WHOLE_REQUEST = "whole-request"  # a token, a shared-secret header, a signature over the URL
VOUCHED_BODY_ONLY = "body-only"  # an HMAC over the raw body


@dataclass(frozen=True)
class Verified:
    """
    What `Provider.authenticate` proved about one webhook, handed to its parse. `nonces`
    are the replay-cache keys it claimed: the receiver gives them back
    (`replay.nonces_release`) when the webhook fails after authentication, so the
    provider's retry of that very request passes.
    """

    scope: str  # VOUCHED_WHOLE_REQUEST or VOUCHED_BODY_ONLY
    nonces: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebhookAck:
    """The answer a provider expects to an accepted webhook; the transport sends it as it can."""

    content_type: str
    body: str


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
    """One HTTP call to a provider, as the channel log stores it; secrets are masked when it is recorded."""

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


OPTION_KINDS = frozenset({"text", "url", "int", "bool", "choice", "env", "mapping"})
# An environment variable's name, as a shell would accept it; upper case by convention here.
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,99}")
# What a mapping option's values may be: another system's field names.
MAPPING_VALUE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
OPTION_TEXT_MAX = 200


@dataclass(frozen=True)
class ProviderOption:
    """
    One shortcode setting a provider reads from Shortcode.provider_config, declared so the
    admin renders it as a real field and validates it (`option_value_error`). A secret is
    never an option's value: kind "env" holds the NAME of the environment variable that
    holds it, and the admin says whether it is set, never what it is.

    Kinds: text (a string, `pattern` when given), url (http or https with a host; the
    provider's `config_errors` fences its origin), int (`min_value`..`max_value`), bool,
    choice (one of `choices`' values), env (a variable name matching `pattern`, else any
    upper-case name), mapping (a dict from `keys` to other field names, such as the names
    an aggregator gives the DLT IDs).
    """

    name: str
    label: str
    kind: str = "text"
    help_text: str = ""
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    default: Any = None
    min_value: int | None = None
    max_value: int | None = None
    pattern: str = ""  # text and env: the value must match it whole
    keys: tuple[str, ...] = ()  # mapping: the keys it may hold

    def __post_init__(self):
        assert self.kind in OPTION_KINDS, f"option {self.name!r}: unknown kind {self.kind!r}"
        assert self.kind != "choice" or self.choices, f"option {self.name!r}: a choice needs choices"
        assert self.kind != "mapping" or self.keys, f"option {self.name!r}: a mapping needs keys"


def option_value_error(option: ProviderOption, value: Any) -> str | None:
    """Why `value` cannot be `option`'s value, or None. The message names the option."""
    name = option.name
    if option.kind in ("text", "url", "env", "choice") and not isinstance(value, str):
        return f"'{name}' must be a string"
    if option.kind == "text":
        if len(value) > OPTION_TEXT_MAX:
            return f"'{name}' is longer than {OPTION_TEXT_MAX} characters"
        if option.pattern and not re.fullmatch(option.pattern, value):
            return f"'{name}' is not in the expected form ({option.help_text or option.pattern})"
    elif option.kind == "url":
        if not url_origin(value):
            return f"'{name}' must be an http or https URL with a host"
    elif option.kind == "env":
        if not ENV_NAME.fullmatch(value) or (option.pattern and not re.fullmatch(option.pattern, value)):
            wanted = f"matching {option.pattern}" if option.pattern else "in upper case"
            return f"'{name}' must name an environment variable {wanted}, never hold a secret"
    elif option.kind == "choice":
        if value not in {choice for choice, _label in option.choices}:
            return f"'{name}' must be one of {', '.join(choice for choice, _label in option.choices)}"
    elif option.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"'{name}' must be a whole number"
        if option.min_value is not None and value < option.min_value:
            return f"'{name}' must be at least {option.min_value}"
        if option.max_value is not None and value > option.max_value:
            return f"'{name}' must be at most {option.max_value}"
    elif option.kind == "bool":
        if not isinstance(value, bool):
            return f"'{name}' must be true or false"
    elif option.kind == "mapping":
        if not isinstance(value, dict):
            return f"'{name}' must be an object"
        unknown = sorted(str(key) for key in value if key not in option.keys)
        if unknown:
            return f"'{name}' may map only {', '.join(option.keys)}, not {', '.join(unknown)}"
        if not all(isinstance(field, str) and MAPPING_VALUE.fullmatch(field) for field in value.values()):
            return f"'{name}' values must be field names (letters, digits, '_', '.', '-')"
    return None


class Provider(ABC):
    """
    Interface every provider implements. Stateless: one instance serves all requests.

    STATUS_MAP maps the provider's status words (lower-case) onto outbound Status members;
    words in IGNORED are known but move nothing.
    """

    slug: ClassVar[str]
    receives_webhooks: ClassVar[bool] = True
    # Its sends are made by a long-lived bind of its own (SMPP), not by the deliver task.
    sends_through_bind: ClassVar[bool] = False
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
    # The shortcode settings it reads from Shortcode.provider_config (sender IDs, URLs, binds).
    OPTIONS: ClassVar[tuple[ProviderOption, ...]] = ()
    STATUS_MAP: ClassVar[dict[str, Status]] = {}
    IGNORED: ClassVar[frozenset[str]] = frozenset()
    # Error codes (of a refused send or a delivery report) that mean the number opted out
    # at the carrier or aggregator: the number goes on our suppression list (Twilio 21610).
    OPTED_OUT_ERROR_CODES: ClassVar[frozenset[str]] = frozenset()
    # The same for providers whose reports carry the reason as a status code (MSG91).
    OPTED_OUT_STATUSES: ClassVar[frozenset[str]] = frozenset()

    # Receiving: authenticate, then parse what was vouched for, then acknowledge. The
    # receiver refuses every webhook while `webhook_refusal()` says so, before
    # `authenticate` is called; a provider whose secret is unset is reached only when
    # webhooks are open (DEBUG) and then takes the request as sent.

    @abstractmethod
    def authenticate(self, webhook: WebhookRequest) -> Verified:
        """What the request's credential proves; WebhookForbidden when it proves nothing."""

    @abstractmethod
    def parse_inbound(self, webhook: WebhookRequest, verified: Verified) -> InboundSMS: ...

    @abstractmethod
    def parse_status(self, webhook: WebhookRequest, verified: Verified) -> list[StatusUpdate]:
        """One webhook may carry several reports (MSG91 v2, Sinch batch reports)."""

    @abstractmethod
    def send(self, sms: OutboundSMS) -> SendResult: ...

    def ack(self) -> WebhookAck:
        return WebhookAck(content_type="application/json", body=json.dumps({"status": "accepted"}))

    def claims(self, webhook: WebhookRequest) -> bool:
        """
        For the provider-less /sms-handler and /sms-dlr: does the request present this
        provider's credential? One of its CREDENTIAL_HEADERS, or `?token=` equal to its
        <SLUG>_WEBHOOK_TOKEN. Never the payload's shape, which anyone can imitate.
        """
        if any(webhook.headers.get(name) for name in self.CREDENTIAL_HEADERS):
            return True
        token = getattr(settings, f"{self.slug.upper()}_WEBHOOK_TOKEN", "")
        return constant_time_equals(token, webhook.query.get("token"))

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

    def options_errors(self, options: Any) -> list[str]:
        """
        Everything wrong with a shortcode's provider options: a key this provider does not
        declare in OPTIONS (it would be ignored, or worse, read by accident), a value of the
        wrong kind, a required one missing, then the provider's own `config_errors`
        (where a URL may point, literal credentials).
        """
        if not isinstance(options, dict):
            return ["provider options must be a JSON object"]
        declared = {option.name: option for option in self.OPTIONS}
        errors = [
            f"unknown option '{name}' for {self.slug} (it reads {', '.join(declared) or 'no options'})"
            for name in options
            if name not in declared
        ]
        for name, option in declared.items():
            value = options.get(name)
            if value is None or value == "":
                if option.required:
                    errors.append(f"'{name}' is required for {self.slug}")
                continue
            error = option_value_error(option, value)
            if error:
                errors.append(error)
        return errors + self.config_errors(options)

    def options_env_unset(self, options: dict[str, Any]) -> list[str]:
        """The environment variables the options name (kind env) that are unset here; no value is read out."""
        return [
            str(options[option.name])
            for option in self.OPTIONS
            if option.kind == "env" and options.get(option.name) and not os.environ.get(str(options[option.name]))
        ]

    def map_status(self, provider_status: str) -> Status | None:
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


def form_data(webhook: WebhookRequest) -> QueryDict:
    """
    The fields of a urlencoded or multipart body: the very object form signatures
    (Twilio, Plivo) are checked over, so what is parsed is what was signed.

    Raises WebhookBadRequest for another media type or a body that could not be parsed.
    """
    if not is_form_media_type(webhook.content_type):
        raise WebhookBadRequest(
            f"Content-Type {webhook.content_type or '(none)'} is not a form: "
            "send application/x-www-form-urlencoded or multipart/form-data"
        )
    if webhook.form is None:
        raise WebhookBadRequest(webhook.form_error or "unreadable form body")
    return webhook.form


def request_data(webhook: WebhookRequest) -> dict[str, Any]:
    """
    The webhook's fields as a flat dict, read as the declared Content-Type says: a JSON
    object (JSON media types), the form (urlencoded or multipart; the last value of a
    repeated field), or the query (GET). The body is never sniffed: a signature checked
    over the form must not be followed by a parse of the same bytes as JSON.

    Raises WebhookBadRequest for another media type or a body that does not parse.
    """
    if webhook.method == "GET":
        return dict(webhook.query.items())
    if is_json_media_type(webhook.content_type):
        data = json_value(webhook.body)
        if not isinstance(data, dict):
            raise WebhookBadRequest("body must be a JSON object")
        return data
    if not is_form_media_type(webhook.content_type):
        raise WebhookBadRequest(
            f"Content-Type {webhook.content_type or '(none)'} is not accepted; send {ACCEPTED_MEDIA_TYPES}"
        )
    form = form_data(webhook)
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


def webhook_request_from(request: HttpRequest, *, remote_addr: str = "") -> WebhookRequest:
    """
    The transport-neutral webhook of a Django request: the URL as signed (`public_url`),
    the client address as the caller believes it. Too large a body raises RequestDataTooBig.
    """
    return webhook_request(
        request.method or "",
        public_url(request),
        headers=dict(request.headers),
        body=request.body,
        remote_addr=remote_addr or request.META.get("REMOTE_ADDR", ""),
    )


def webhook_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    remote_addr: str = "",
) -> WebhookRequest:
    """
    A webhook from its parts, whatever carried it: `url` as signed (query included), the
    form parsed from `body` when the Content-Type says it is one.
    """
    headers = CaseInsensitiveMapping(headers or {})
    parts = urlsplit(url)
    content_type = headers.get("Content-Type", "")
    form, form_error = _form_parse(method.upper(), content_type, body)
    return WebhookRequest(
        method=method.upper(),
        url=url,
        path=parts.path,
        query=QueryDict(parts.query),
        headers=headers,
        body=body,
        content_type=content_type.split(";", 1)[0].strip().lower(),
        form=form,
        form_error=form_error,
        remote_addr=remote_addr,
    )


def _form_parse(method: str, content_type: str, body: bytes) -> tuple[QueryDict | None, str]:
    """
    The form of a POSTed urlencoded or multipart body, by Django's own parsers (an empty
    one for anything else), or None and why it cannot be read. Django's limits
    (DATA_UPLOAD_MAX_NUMBER_FIELDS...) apply; too large a body raises RequestDataTooBig.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if method != "POST" or media_type not in FORM_MEDIA_TYPES:
        return QueryDict(), ""
    try:
        if media_type == "multipart/form-data":
            meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
            form, _files = MultiPartParser(meta, io.BytesIO(body), [MemoryFileUploadHandler()]).parse()
            return form, ""
        return QueryDict(body, encoding=settings.DEFAULT_CHARSET), ""
    except RequestDataTooBig:
        raise  # a 413, not a form that cannot be read
    except MultiPartParserError as exc:
        return None, f"malformed multipart body: {exc}"
    except (BadRequest, SuspiciousOperation) as exc:
        return None, f"unreadable form body: {exc}"


def verify_webhook_token(webhook: WebhookRequest, slug: str) -> Verified:
    """
    For providers that sign nothing: `?token=` must equal <SLUG>_WEBHOOK_TOKEN. An unset
    token is reached only with webhooks open (Provider.webhook_refusal refuses otherwise).
    """
    expected = getattr(settings, f"{slug.upper()}_WEBHOOK_TOKEN", "")
    if expected and not constant_time_equals(expected, webhook.query.get("token")):
        raise WebhookForbidden("missing or wrong ?token=")
    return Verified(VOUCHED_WHOLE_REQUEST)


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


def status_reference(webhook: WebhookRequest, verified: Verified, body_reference: str) -> str:
    """
    Our reference (Message.uuid) for a status report, from `?ref=` or the body.

    When the whole request is vouched for, `?ref=` comes first. When only the body is
    signed, the body's reference wins, a `?ref=` that disagrees with it is refused (a
    captured report replayed at another message), and a `?ref=` alone is ignored, so the
    provider's message id does the matching.
    """
    query_reference = webhook.query.get("ref", "")
    if verified.scope == VOUCHED_WHOLE_REQUEST:
        return query_reference or body_reference
    if query_reference and body_reference and query_reference.strip().lower() != body_reference.strip().lower():
        raise WebhookForbidden("?ref= disagrees with the signed reference in the body")
    return body_reference

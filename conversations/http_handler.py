"""
The `http` handler: a command answered by another system's HTTP endpoint, and
`endpoint_post`, the one way the project POSTs to such an endpoint (flows use it too).

A command's config: `endpoint` (URL), `secret_env` (the HANDLER_SECRET_* variable holding
its signing secret), optional `headers`, `timeout` (seconds), `retries` (0 to 5, default
2) and `fallback` (the reply when the endpoint fails). The endpoint receives
`{phone, code, args, shortcode}` as JSON, signed as delivery/signing.py describes, and
answers JSON whose `reply` (or `message`) is the reply, or a text/plain reply.

Every request is signed: the body's HMAC-SHA256 with a secret per command, read from
the environment at call time, so the receiver can tell our calls from anyone else's.
While the variable is unset nothing is sent (fail closed). Failures that may pass (no
connection, no answer in time, 5xx, 429) are tried again with a growing pause.

Business staff configure the endpoint, so it is called the way one calls a stranger:

- No redirects: a 3xx is a failure, since following it would carry our headers to
  whatever host it names.
- At most HANDLER_HTTP_MAX_RESPONSE_BYTES of answer are read; a longer one is a failure.
- One deadline for the whole call (HANDLER_HTTP_TIMEOUT_SECONDS, or the command's lower
  "timeout"): connecting, the answer's headers and every byte of its body. When it
  passes, the call's sockets are shut down, which ends any read still waiting, so a
  server that drips one byte at a time cannot hold the worker.
- Public addresses only: a name resolving to any private, loopback, link-local or
  reserved address is refused unless the host is in HANDLER_HTTP_ALLOWED_HOSTS or the
  address in HANDLER_HTTP_ALLOWED_NETWORKS. The check runs as the socket connects, on
  every address the name resolves to, and the socket connects to an address it checked,
  so a name that resolves elsewhere a second time (DNS rebinding) gains nothing. Proxy
  variables from the environment are ignored: a proxy would reach what is refused here.
- Header values are never literal secrets. `{env:HANDLER_SECRET_NAME}` in a value is
  read from the environment at call time through `env_secret`, so the value is masked
  wherever we log; headers that carry credentials (Authorization, Cookie, names with
  key, token, secret, password, auth) must be such references, which
  `http_config_validate` enforces when a Command is saved and again before each call.
  Only variables named HANDLER_SECRET_* can be referenced, so a command cannot send
  the service's own credentials to its endpoint.

Every call is one `endpoint.called` event (delivery/events.py: URL masked, outcome,
status, attempts, latency). Every failure is logged (secrets masked) and answered with
the command's "fallback" text, or the standard apology: the inbound SMS is handled and
answered all the same, nothing is lost.
"""

import contextlib
import ipaddress
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from commands.handlers import UNAVAILABLE_REPLY, HandlerContext, HandlerResult, handler
from delivery.events import event
from delivery.redaction import env_secret, redact, redact_query
from delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, request_sign

logger = logging.getLogger(__name__)

ENV_PREFIX = "HANDLER_SECRET_"
ENV_REFERENCE = re.compile(r"\{env:([A-Za-z0-9_]+)\}")
SECRET_ENV_NAME = re.compile(ENV_PREFIX + r"[A-Za-z0-9_]+")
# A credential is one reference, after an optional scheme word ("Bearer {env:...}").
CREDENTIAL_VALUE = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]* )?\{env:[A-Za-z0-9_]+\}")
CREDENTIAL_NAME = re.compile(r"auth|cookie|key|token|secret|passw|signature", re.IGNORECASE)
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Set by the HTTP client from the request itself; a configured value would be a smuggling tool.
# The body's type and its signature are ours: a configured value would break or forge them.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "content-type"}
    | {TIMESTAMP_HEADER.lower(), SIGNATURE_HEADER.lower()}
)
DEFAULT_RETRIES = 2
CHUNK_BYTES = 8192


class HandlerCallFailed(Exception):
    """The endpoint's answer cannot be used; the message says why (never a secret)."""


class EndpointRefused(Exception):
    """The endpoint resolves to an address handlers may not call."""


def http_config_validate(config: Any) -> None:
    """Raise ValidationError listing what makes an `http` command's config unusable or unsafe."""
    if not isinstance(config, dict):
        raise ValidationError("The http handler's options must be a JSON object.")
    errors = []
    if problem := endpoint_url_problem(config.get("endpoint")):
        errors.append(f"'endpoint' {problem}.")
    if problem := secret_env_problem(config.get("secret_env")):
        errors.append(
            f"'secret_env' {problem}: every request is signed with it (the secret itself is set on the server)."
        )
    timeout = config.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        errors.append("'timeout' must be a positive number of seconds.")
    retries = config.get("retries")
    if retries is not None and (
        isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES
    ):
        errors.append(f"'retries' must be a whole number from 0 to {MAX_RETRIES}.")
    fallback = config.get("fallback")
    if fallback is not None and not isinstance(fallback, str):
        errors.append("'fallback' must be a text.")
    headers = config.get("headers") or {}
    if not isinstance(headers, dict):
        errors.append("'headers' must be an object of header names to texts.")
        headers = {}
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name) or not isinstance(value, str):
            errors.append(f"Header {name!r} must be a plain header name with a text value.")
        elif name.lower() in RESERVED_HEADERS:
            errors.append(f"Header {name!r} is set by the HTTP client and cannot be configured.")
        elif "\r" in value or "\n" in value:
            errors.append(f"Header {name!r} may not contain line breaks.")
        elif any(not ref.startswith(ENV_PREFIX) for ref in ENV_REFERENCE.findall(value)):
            errors.append(f"Header {name!r} may only reference environment variables named {ENV_PREFIX}*.")
        elif CREDENTIAL_NAME.search(name) and not CREDENTIAL_VALUE.fullmatch(value):
            errors.append(
                f"Header {name!r} carries a credential: write its value as {{env:{ENV_PREFIX}NAME}} "
                f"(optionally after a scheme, 'Bearer {{env:{ENV_PREFIX}NAME}}') and set that variable "
                "on the server, never the secret itself."
            )
    if errors:
        raise ValidationError(errors)


def http_headers_resolve(headers: dict[str, str]) -> dict[str, str]:
    """Header values with every {env:NAME} replaced by the variable's value, now declared secret."""

    def substitute(match: re.Match) -> str:
        value = env_secret(match.group(1))
        if not value:
            raise HandlerCallFailed(f"environment variable {match.group(1)} is not set")
        return value

    return {str(name): ENV_REFERENCE.sub(substitute, str(value)) for name, value in headers.items()}


def address_allowed(host: str, address: str) -> bool:
    """Public addresses, and others only when the host or the address's network is allowlisted."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:
        return True
    if host.rstrip(".").lower() in {h.rstrip(".").lower() for h in settings.HANDLER_HTTP_ALLOWED_HOSTS}:
        return True
    return any(ip in ipaddress.ip_network(network, strict=False) for network in settings.HANDLER_HTTP_ALLOWED_NETWORKS)


class _Deadline:
    """
    One call's time budget. When it passes, every socket the call opened is shut down,
    which wakes a read blocked on it; `expired` tells the caller why the read ended.
    """

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor of the same connection: TLS wrapping detaches the original socket object.
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                self._shutdown(self._sockets[-1])

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # not connected yet, or already closed
            sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self):
        self._token = _current_deadline.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        _current_deadline.reset(self._token)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


_current_deadline: ContextVar[_Deadline | None] = ContextVar("http_handler_deadline", default=None)


class _GuardedConnectionMixin:
    """Resolve once, refuse addresses handlers may not call, connect to a checked address."""

    def _new_conn(self) -> socket.socket:
        deadline = _current_deadline.get()
        infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        refused = sorted({info[4][0] for info in infos if not address_allowed(self.host, info[4][0])})
        if refused:
            raise EndpointRefused(
                f"{self.host} resolves to {', '.join(refused)}, a private or reserved address; "
                "allow it in HANDLER_HTTP_ALLOWED_HOSTS or HANDLER_HTTP_ALLOWED_NETWORKS"
            )
        timeout = self.timeout if isinstance(self.timeout, int | float) else None
        error: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if deadline is not None:
                    timeout = min(timeout or deadline.remaining(), deadline.remaining())
                    deadline.watch(sock)
                sock.settimeout(timeout)
                sock.connect(address)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }


@dataclass(frozen=True)
class EndpointAnswer:
    """
    What one `endpoint_post` came to. `ok` means a 2xx answer that could be read; `reply`
    is its text ("" when it carried none); `status_code` is None when no HTTP answer
    arrived; `elapsed_ms` covers every attempt and pause; `error` says why not ok
    (never a secret).
    """

    ok: bool
    reply: str
    status_code: int | None
    elapsed_ms: int
    error: str


@dataclass(frozen=True)
class EndpointExchange:
    status_code: int
    content_type: str
    body: bytes


class _TransientFailure(HandlerCallFailed):
    """A failure worth another attempt: no connection, no answer in time, 5xx or 429."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class _CallRefused(HandlerCallFailed):
    """An HTTP answer that cannot be used and would not be better a second time."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def endpoint_exchange(
    *, url: str, body: bytes, headers: dict[str, str], seconds: float, max_bytes: int
) -> EndpointExchange:
    """
    POST `body` once, inside the fence, and return the answer; the body is read only for
    a 2xx. Raises _TransientFailure, HandlerCallFailed, EndpointRefused or RequestException.
    """
    with _Deadline(seconds) as deadline, requests.Session() as session:
        session.trust_env = False
        adapter = _GuardedAdapter(max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        try:
            with session.post(
                url,
                data=body,
                headers=headers,
                timeout=(seconds, seconds),
                allow_redirects=False,
                stream=True,
            ) as response:
                status = response.status_code
                if status >= 500 or status == 429:
                    raise _TransientFailure(
                        f"answered HTTP {status}",
                        status_code=status,
                        retry_after=_retry_after(response.headers.get("Retry-After", "")),
                    )
                if not 200 <= status < 300:
                    raise _CallRefused(f"answered HTTP {status}", status_code=status)
                declared = response.headers.get("Content-Length", "")
                if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
                    raise _CallRefused(f"answer of {declared} bytes is over the {max_bytes}-byte limit", status)
                received = bytearray()
                for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                    received += chunk
                    if len(received) > max_bytes:
                        raise _CallRefused(f"answer is over the {max_bytes}-byte limit", status)
                    if deadline.expired:
                        break
                content_type = response.headers.get("Content-Type", "")
        except requests.exceptions.SSLError:
            raise  # a certificate does not get better by asking again
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            # requests' own timeout and our deadline are the same time limit; whichever fired, it is one.
            if deadline.expired or isinstance(exc, requests.Timeout):
                raise _TransientFailure(f"no complete answer within {seconds:g} s") from None
            raise _TransientFailure(f"{type(exc).__name__}: {exc}") from None
        except requests.RequestException:
            if deadline.expired:
                raise _TransientFailure(f"no complete answer within {seconds:g} s") from None
            raise
        if deadline.expired:
            raise _TransientFailure(f"no complete answer within {seconds:g} s", status_code=status)
        return EndpointExchange(status_code=status, content_type=content_type, body=bytes(received))


def _retry_after(value: str) -> float | None:
    value = value.strip()
    return float(value) if value.isascii() and value.isdigit() else None


def answer_reply(exchange: EndpointExchange) -> str:
    """
    The reply text of a 2xx answer: a JSON object's `reply`, else its `message`; a
    text/plain body as it is; "" for any other answer. Raises _CallRefused for a body that
    says it is JSON and is not.
    """
    if not exchange.body.strip():
        return ""  # 204, or an endpoint that only acknowledges
    media_type = exchange.content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            answer = json.loads(exchange.body)
        except ValueError:
            raise _CallRefused("answer is not valid JSON", exchange.status_code) from None
        if isinstance(answer, dict):
            for key in ("reply", "message"):
                if isinstance(answer.get(key), str) and answer[key].strip():
                    return answer[key].strip()
        return ""
    if media_type == "text/plain":
        return exchange.body.decode(_charset(exchange.content_type), errors="replace").strip()
    return ""


def _charset(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
            try:
                "".encode(charset)
            except LookupError:
                return "utf-8"
            return charset
    return "utf-8"


def url_masked(url: str) -> str:
    """`url` as logs may show it: declared secrets and token-like query values masked."""
    return redact(redact_query(url))


def endpoint_url_problem(url: Any) -> str:
    """Why `url` cannot be an endpoint ("" when it can): http(s) with a host, no credentials in it."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    if parts.username or parts.password:
        return f"may not carry credentials; send them in a header as {{env:{ENV_PREFIX}NAME}}"
    return ""


def secret_env_problem(name: Any) -> str:
    """Why `name` cannot name a signing secret ("" when it can): only HANDLER_SECRET_* variables."""
    if not isinstance(name, str) or not SECRET_ENV_NAME.fullmatch(name):
        return f"must name an environment variable {ENV_PREFIX}<NAME> (letters, digits, underscores)"
    return ""


# Pauses between attempts grow from BACKOFF_FIRST_SECONDS, doubling, to at most BACKOFF_MAX_SECONDS.
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 4.0
MAX_RETRIES = 5
# The pause between attempts; tests travel through it instead of sleeping.
backoff_sleep: Callable[[float], None] = time.sleep


def backoff_seconds(retry: int, retry_after: float | None = None) -> float:
    """The pause before retry number `retry` (0 first): doubling, or the server's Retry-After, capped."""
    pause = BACKOFF_FIRST_SECONDS * 2**retry if retry_after is None else retry_after
    return min(pause, BACKOFF_MAX_SECONDS)


def endpoint_post(
    *,
    url: str,
    payload: dict,
    secret_env: str,
    timeout: float,
    retries: int,
    headers: dict[str, str] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> EndpointAnswer:
    """
    POST `payload` as JSON to another system's endpoint, signed, and say what came of it.

    The body is signed with delivery/signing.py (X-Smsgate-Timestamp, X-Smsgate-Signature)
    using the secret in the environment variable named by `secret_env`, which must be a
    HANDLER_SECRET_* variable; while it is unset nothing is sent (fail closed). `headers`
    are sent as given (resolved values, see http_headers_resolve). Each attempt runs
    inside the fence of this module (public addresses only, no redirects, bounded answer,
    one deadline of `timeout` seconds capped by HANDLER_HTTP_TIMEOUT_SECONDS). Only
    failures that may pass are tried again, up to `retries` more times with a growing
    pause: no connection, no answer in time, 5xx and 429 (its Retry-After honoured up to
    the cap). A retried request may have reached the endpoint already, so an endpoint
    sees at most 1 + retries copies; each carries a fresh timestamp and signature. One
    `endpoint.called` event per call records the URL (masked), outcome, status, attempts
    and latency. Never raises for anything the endpoint does.
    """
    started = time.monotonic()
    attempts, status_code = 0, None

    def finish(*, reply: str = "", error: str = "") -> EndpointAnswer:
        answer = EndpointAnswer(
            ok=not error,
            reply=reply,
            status_code=status_code,
            elapsed_ms=round((time.monotonic() - started) * 1000),
            error=redact(redact_query(error)),
        )
        event(
            "endpoint.called",
            url=url_masked(str(url)),
            outcome="ok" if answer.ok else "failed",
            status_code=status_code,
            attempts=attempts,
            elapsed_ms=answer.elapsed_ms,
            error=answer.error,
        )
        return answer

    if problem := endpoint_url_problem(url):
        return finish(error=f"endpoint {problem}")
    if problem := secret_env_problem(secret_env):
        return finish(error=f"signing secret {problem}")
    secret = env_secret(secret_env)
    if not secret:
        return finish(error=f"signing secret: environment variable {secret_env} is not set, nothing was sent")
    try:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        return finish(error=f"payload cannot be sent as JSON: {exc}")
    limit = settings.HANDLER_HTTP_TIMEOUT_SECONDS
    seconds = min(float(timeout), limit) if timeout and float(timeout) > 0 else limit
    retries = max(0, min(int(retries), MAX_RETRIES))
    wait = sleep or backoff_sleep
    while True:
        attempts += 1
        sent_headers = {
            **(headers or {}),
            "Content-Type": "application/json",
            **request_sign(secret=secret, body=body),
        }
        try:
            exchange = endpoint_exchange(
                url=url,
                body=body,
                headers=sent_headers,
                seconds=seconds,
                max_bytes=settings.HANDLER_HTTP_MAX_RESPONSE_BYTES,
            )
            status_code = exchange.status_code
            return finish(reply=answer_reply(exchange))
        except _TransientFailure as exc:
            status_code = exc.status_code
            if attempts > retries:
                return finish(error=f"{exc} (after {attempts} attempts)" if attempts > 1 else str(exc))
            wait(backoff_seconds(attempts - 1, exc.retry_after))
        except _CallRefused as exc:
            status_code = exc.status_code
            return finish(error=str(exc))
        except (HandlerCallFailed, EndpointRefused, requests.RequestException) as exc:
            return finish(error=str(exc))


def http_handler_answer(ctx: HandlerContext) -> EndpointAnswer | str:
    """The endpoint's answer for this SMS, or the reason it was not called (a misconfigured command)."""
    config = ctx.config if isinstance(ctx.config, dict) else {}
    try:
        http_config_validate(ctx.config)
        headers = http_headers_resolve(config.get("headers") or {})
    except ValidationError as exc:
        return "misconfigured: " + " ".join(exc.messages)
    except HandlerCallFailed as exc:
        return str(exc)
    return endpoint_post(
        url=config["endpoint"],
        payload={"phone": ctx.phone, "code": ctx.code, "args": ctx.args, "shortcode": ctx.shortcode},
        secret_env=config["secret_env"],
        timeout=float(config.get("timeout") or settings.HANDLER_HTTP_TIMEOUT_SECONDS),
        retries=int(config.get("retries", DEFAULT_RETRIES)),
        headers=headers,
    )


@handler(
    "http",
    description=(
        "POST {phone, code, args, shortcode}, signed, to config['endpoint']; "
        "the reply is the JSON's 'reply' or 'message', or a text/plain answer."
    ),
    transactional=False,
    validate_config=http_config_validate,
)
def http_handler(ctx: HandlerContext) -> HandlerResult:
    config = ctx.config if isinstance(ctx.config, dict) else {}
    fallback = config.get("fallback") or UNAVAILABLE_REPLY
    answer = http_handler_answer(ctx)
    if isinstance(answer, str):
        logger.error("http handler for %s/%s not called: %s", ctx.shortcode, ctx.code, redact(answer))
        return HandlerResult(reply=fallback)
    if not answer.ok or not answer.reply:
        reason = answer.error or "answered without a reply text"
        logger.warning(
            "http handler %s for %s/%s gave the fallback reply: %s",
            url_masked(str(config.get("endpoint"))),
            ctx.shortcode,
            ctx.code,
            reason,
        )
        return HandlerResult(reply=fallback)
    return HandlerResult(reply=answer.reply)

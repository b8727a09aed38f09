"""
The `http` handler: a command answered by another system's HTTP endpoint.

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

Every failure is logged (secrets masked) and answered with the command's "fallback"
text, or the standard apology.
"""

import contextlib
import ipaddress
import json
import logging
import re
import socket
import threading
import time
from contextvars import ContextVar
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
from delivery.redaction import env_secret, redact

logger = logging.getLogger(__name__)

ENV_PREFIX = "HANDLER_SECRET_"
ENV_REFERENCE = re.compile(r"\{env:([A-Za-z0-9_]+)\}")
# A credential is one reference, after an optional scheme word ("Bearer {env:...}").
CREDENTIAL_VALUE = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]* )?\{env:[A-Za-z0-9_]+\}")
CREDENTIAL_NAME = re.compile(r"auth|cookie|key|token|secret|passw|signature", re.IGNORECASE)
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Set by the HTTP client from the request itself; a configured value would be a smuggling tool.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "te", "upgrade"})
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
    endpoint = config.get("endpoint")
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append("'endpoint' must be an http:// or https:// URL.")
    elif parts.username or parts.password:
        errors.append(f"'endpoint' may not carry credentials; send them in a header as {{env:{ENV_PREFIX}NAME}}.")
    timeout = config.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        errors.append("'timeout' must be a positive number of seconds.")
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


def endpoint_call(*, url: str, payload: dict, headers: dict[str, str], seconds: float, max_bytes: int) -> bytes:
    """POST `payload` as JSON and return the answer's body; HandlerCallFailed, EndpointRefused or RequestException."""
    with _Deadline(seconds) as deadline, requests.Session() as session:
        session.trust_env = False
        adapter = _GuardedAdapter(max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        try:
            with session.post(
                url,
                json=payload,
                headers=headers,
                timeout=(seconds, seconds),
                allow_redirects=False,
                stream=True,
            ) as response:
                if not 200 <= response.status_code < 300:
                    raise HandlerCallFailed(f"answered HTTP {response.status_code}")
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise HandlerCallFailed(f"answer of {declared} bytes is over the {max_bytes}-byte limit")
                body = bytearray()
                for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                    body += chunk
                    if len(body) > max_bytes:
                        raise HandlerCallFailed(f"answer is over the {max_bytes}-byte limit")
                    if deadline.expired:
                        break
        except requests.RequestException:
            if deadline.expired:
                raise HandlerCallFailed(f"no complete answer within {seconds:g} s") from None
            raise
        if deadline.expired:
            raise HandlerCallFailed(f"no complete answer within {seconds:g} s")
        return bytes(body)


@handler(
    "http",
    description="POST {phone, code, args, shortcode} to config['endpoint']; reply is the JSON's 'reply'.",
    transactional=False,
    validate_config=http_config_validate,
)
def http_handler(ctx: HandlerContext) -> HandlerResult:
    config = ctx.config if isinstance(ctx.config, dict) else {}
    fallback = config.get("fallback") or UNAVAILABLE_REPLY
    endpoint = str(config.get("endpoint") or "")
    try:
        http_config_validate(ctx.config)
    except ValidationError as exc:
        logger.error("http handler for %s/%s is misconfigured: %s", ctx.shortcode, ctx.code, " ".join(exc.messages))
        return HandlerResult(reply=fallback)
    limit = settings.HANDLER_HTTP_TIMEOUT_SECONDS
    payload = {"phone": ctx.phone, "code": ctx.code, "args": ctx.args, "shortcode": ctx.shortcode}
    try:
        body = endpoint_call(
            url=endpoint,
            payload=payload,
            headers=http_headers_resolve(config.get("headers") or {}),
            seconds=min(float(config.get("timeout") or limit), limit),
            max_bytes=settings.HANDLER_HTTP_MAX_RESPONSE_BYTES,
        )
        answer = json.loads(body)
    except (HandlerCallFailed, EndpointRefused, requests.RequestException, ValueError) as exc:
        logger.warning(
            "http handler %s failed for %s/%s: %s", redact(endpoint), ctx.shortcode, ctx.code, redact(str(exc))
        )
        return HandlerResult(reply=fallback)
    reply = answer.get("reply") if isinstance(answer, dict) else None
    if not isinstance(reply, str) or not reply.strip():
        logger.warning("http handler %s answered without a 'reply' text", redact(endpoint))
        return HandlerResult(reply=fallback)
    return HandlerResult(reply=reply)

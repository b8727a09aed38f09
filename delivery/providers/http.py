"""
The one way a provider calls an aggregator's API.

Every send goes out through `http_call` (or `http_send`, for a request an SDK prepared):
one pooled `requests.Session` per process, so keep-alive connections are reused; a
timeout on every call; no redirect followed, so credentials stay on the origin they were
meant for; the exchange recorded for the channel log with secrets already masked; and
failures sorted into transient ones, which are retried (no answer, a timeout, 5xx, 429
with its Retry-After), and permanent ones (any other 4xx).

The SDK-based providers (twilio, plivo) route the SDK's HTTP through here unchecked
(`check=False`): the SDK parses every answer and raises its own error, and the provider
turns that error into a SendError with `send_error`, adding what only it knows (Twilio's
error codes, among them the opt-out one).
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.structures import CaseInsensitiveDict

from delivery.providers.base import HttpExchange, PermanentSendError, SendError, TransientSendError
from delivery.redaction import CREDENTIAL_HEADERS, MASK, redact, secret_forms, secret_values

MASKED_HEADERS = frozenset(name.lower() for name in CREDENTIAL_HEADERS)
RESPONSE_BODY_LIMIT = 10_000

SESSION = requests.Session()
# No cookie is kept: each send stands on its own credentials, never on an earlier answer's.
SESSION.cookies.set_policy(DefaultCookiePolicy(allowed_domains=()))


@dataclass(frozen=True)
class HttpReply:
    """An aggregator's answer, of any status, and the exchange as the channel log will store it."""

    response: requests.Response
    exchange: HttpExchange

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> CaseInsensitiveDict:
        return self.response.headers

    @property
    def text(self) -> str:
        return self.response.text

    def data(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return self.response.json()
        except ValueError:
            return None


def http_call(
    method: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float,
    secrets: Iterable[str] = (),
    service: str = "gateway",
    check: bool = True,
) -> HttpReply:
    """
    Call `url` and return the answer. `secrets` are values to mask besides the declared
    ones (delivery.redaction); `service` names the far side in error texts. With `check`,
    an answer of 400 or more raises `send_error`'s SendError. Raises TransientSendError
    when no answer came, PermanentSendError for a request that cannot be built.
    """
    request = requests.Request(method.upper(), url, params=params, data=data, json=json, headers=headers, auth=auth)
    try:
        prepared = SESSION.prepare_request(request)
    except (requests.RequestException, ValueError) as exc:
        masks = _masks(secrets)
        raise PermanentSendError(redact(f"{service} URL {url!r}: {exc}", masks), code="bad_config") from exc
    return http_send(prepared, timeout=timeout, secrets=secrets, service=service, check=check)


def http_send(
    request: requests.PreparedRequest,
    *,
    timeout: float,
    secrets: Iterable[str] = (),
    service: str = "gateway",
    check: bool = True,
) -> HttpReply:
    """`http_call` for a request already prepared (by an SDK, with its own headers and auth)."""
    masks = _masks(secrets)
    started = time.monotonic()
    try:
        response = SESSION.send(request, timeout=timeout, allow_redirects=False, **_environment(request.url))
    except requests.RequestException as exc:
        code = "timeout" if isinstance(exc, requests.Timeout) else "connection"
        failed = _exchange(
            request,
            error=f"{exc.__class__.__name__}: {exc}",
            elapsed_ms=int((time.monotonic() - started) * 1000),
            masks=masks,
        )
        raise TransientSendError(redact(f"{service} {code}: {exc}", masks), code=code, exchanges=(failed,)) from exc
    exchange = _exchange(
        request,
        status_code=response.status_code,
        response_body=response.text[:RESPONSE_BODY_LIMIT],
        elapsed_ms=int(response.elapsed.total_seconds() * 1000),
        masks=masks,
    )
    reply = HttpReply(response, exchange)
    if check and reply.status_code >= 400:
        text = redact(f"{service} answered {reply.status_code}: {reply.text[:200]}", masks)
        raise send_error(reply, text, code=str(reply.status_code))
    return reply


def _environment(url: str) -> dict[str, Any]:
    """What the process environment sets for a request to `url` (proxies, CA bundle), read once per origin."""
    parts = urlsplit(url)
    return dict(_origin_environment(f"{parts.scheme}://{parts.netloc}"))


@lru_cache(maxsize=256)
def _origin_environment(origin: str) -> tuple[tuple[str, Any], ...]:
    # requests reads the proxy variables (and no_proxy) on every call otherwise.
    return tuple(SESSION.merge_environment_settings(f"{origin}/", {}, None, None, None).items())


def send_error(
    reply: HttpReply, message: str, *, code: str, exchanges: tuple[HttpExchange, ...] | None = None
) -> SendError:
    """
    The error for an answer that is not a success: transient for 5xx and 429 (its
    Retry-After honoured), permanent otherwise, since the same request will be refused
    again. `exchanges` defaults to this answer's own.
    """
    exchanges = (reply.exchange,) if exchanges is None else exchanges
    if reply.status_code == 429 or reply.status_code >= 500:
        retry_after = retry_after_seconds(reply.headers.get("Retry-After"))
        return TransientSendError(message, code=code, retry_after=retry_after, exchanges=exchanges)
    return PermanentSendError(message, code=code, exchanges=exchanges)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (the HTTP-date form is treated as absent)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def setting_values(names: Iterable[str]) -> list[str]:
    """The current values of settings, as `secrets` for a call that carries them."""
    return [str(getattr(settings, name, "") or "") for name in names]


def _masks(secrets: Iterable[str]) -> list[str]:
    return sorted(set(secret_values()) | set(secret_forms(secrets)), key=len, reverse=True)


def _exchange(
    request: requests.PreparedRequest,
    *,
    masks: list[str],
    status_code: int | None = None,
    response_body: str = "",
    elapsed_ms: int = 0,
    error: str = "",
) -> HttpExchange:
    body = request.body or ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return HttpExchange(
        method=request.method or "",
        url=redact(request.url or "", masks),
        request_headers={
            name: MASK if name.lower() in MASKED_HEADERS else redact(str(value), masks)
            for name, value in request.headers.items()
        },
        request_body=redact(body, masks),
        status_code=status_code,
        response_body=redact(response_body, masks),
        elapsed_ms=elapsed_ms,
        error=redact(error, masks),
    )

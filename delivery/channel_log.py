"""
The channel log: every webhook received and every provider API call, secrets masked.

Masking is by value (every configured secret, wherever it appears: URL, header, body)
and by header name (Authorization and signature headers, whose values are derived from
secrets and so never equal to one).
"""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from delivery.models import ChannelLog
from delivery.providers import all_providers
from delivery.providers.base import HttpExchange
from delivery.redaction import CREDENTIAL_HEADERS, MASK, redact, redact_query, secret_values

logger = logging.getLogger(__name__)


def sensitive_headers() -> frozenset[str]:
    """Lower-case names of the headers masked whatever their value."""
    # Each provider adds its signature headers to the common ones.
    names = [*CREDENTIAL_HEADERS, *(name for p in all_providers() for name in p.SENSITIVE_HEADERS)]
    return frozenset(name.lower() for name in names)


def redact_headers(headers: dict[str, str], secrets: list[str]) -> dict[str, str]:
    masked = sensitive_headers()
    return {name: MASK if name.lower() in masked else redact(str(value), secrets) for name, value in headers.items()}


def _format(headers: dict[str, str], body: str, secrets: list[str]) -> str:
    head = "\n".join(f"{k}: {v}" for k, v in redact_headers(headers, secrets).items())
    return f"{head}\n\n{redact(body, secrets)}" if head else redact(body, secrets)


def channel_log_exchanges(*, provider: str, message_id: int | None, exchanges: tuple[HttpExchange, ...]) -> None:
    """Store the API calls one send made."""
    channel_log_sends([(provider, message_id, exchanges)])


def channel_log_sends(sends: list[tuple[str, int | None, tuple[HttpExchange, ...]]]) -> None:
    """Store the API calls of several sends, each (provider, message id, its exchanges), in one INSERT."""
    secrets = secret_values()
    ChannelLog.objects.bulk_create(
        ChannelLog(
            kind=ChannelLog.Kind.SEND,
            provider=provider,
            message_id=message_id,
            url=redact_query(redact(exchange.url, secrets)),
            request=_format(exchange.request_headers, exchange.request_body, secrets),
            response=redact(exchange.response_body, secrets),
            status_code=exchange.status_code,
            elapsed_ms=exchange.elapsed_ms,
            error=redact(exchange.error, secrets),
        )
        for provider, message_id, exchanges in sends
        for exchange in exchanges
    )


def channel_log_webhook_row(
    *,
    kind: str,
    provider: str,
    request: HttpRequest,
    response: HttpResponse,
    elapsed_ms: int,
    error: str = "",
) -> ChannelLog:
    """
    The channel log row of one authenticated webhook as received and answered, masked and
    not yet saved: the view stores it with the rows the webhook carries, in one commit.
    """
    secrets = secret_values()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
    try:
        body = request.body.decode("utf-8", "replace")
    except Exception:  # the body may be unreadable (too large): log without it
        body = ""
    return ChannelLog(
        kind=kind,
        provider=provider,
        url=_storable(redact_query(redact(request.get_full_path(), secrets))),
        request=_storable(_format(headers, body[:20_000], secrets)),
        response=_storable(redact(response.content.decode("utf-8", "replace")[:5_000], secrets)),
        status_code=response.status_code,
        elapsed_ms=elapsed_ms,
        error=_storable(redact(error, secrets)),
    )


def _storable(text: str) -> str:
    # Postgres text refuses NUL, and a log row must never fail the webhook it records.
    return text.replace("\x00", "")


def channel_log_row_save(row: ChannelLog) -> None:
    """Save a channel log row in a savepoint: losing a diagnostic row never fails the webhook's transaction."""
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except Exception:
        logger.exception("could not write the channel log for a %s webhook", row.provider)


def channel_log_webhook(
    *,
    kind: str,
    provider: str,
    request: HttpRequest,
    response: HttpResponse,
    elapsed_ms: int,
    message_id: int | None = None,
    error: str = "",
) -> None:
    """Store one webhook as received and what we answered. Never fails the webhook."""
    row = channel_log_webhook_row(
        kind=kind, provider=provider, request=request, response=response, elapsed_ms=elapsed_ms, error=error
    )
    row.message_id = message_id
    channel_log_row_save(row)


def channel_log_refusal(
    *, kind: str, provider: str, request: HttpRequest, status_code: int, source: str, reason: str
) -> bool:
    """
    Store one refused webhook (not authenticated, too large, wrong method, unknown
    provider) as metadata only: method, path, body size, source address and reason,
    never its body or headers, which a stranger chose. At most
    CHANNEL_LOG_REFUSALS_PER_MINUTE rows per source address a minute; past that they are
    counted in a log line instead. Returns whether a row was written.
    """
    minute = int(timezone.now().timestamp() // 60)
    key = f"channel-log:refusals:{source}:{minute}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        count = 1
    limit = settings.CHANNEL_LOG_REFUSALS_PER_MINUTE
    if count > limit:
        if count == limit + 1 or count % 100 == 0:
            logger.warning("%d refused webhooks from %s this minute; past %d they are not stored", count, source, limit)
        return False
    try:
        size = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        size = 0
    try:
        with transaction.atomic():
            ChannelLog.objects.create(
                kind=kind,
                provider=provider[:30],
                url=redact_query(redact(request.get_full_path()))[:2000],
                request=f"{request.method} from {source}, {size} bytes",
                status_code=status_code,
                error=redact(reason)[:500],
            )
    except Exception:  # the log is a diagnostic: losing one row must not lose the webhook's answer
        logger.exception("could not write the channel log for a refused %s webhook", provider)
        return False
    return True

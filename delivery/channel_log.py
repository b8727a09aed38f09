"""
The channel log: every webhook received and every provider API call, secrets masked.

Masking is by value (every configured secret, wherever it appears: URL, header, body)
and by header name (Authorization and signature headers, whose values are derived from
secrets and so never equal to one).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from delivery.models import ChannelLog
from delivery.providers.base import HttpExchange

logger = logging.getLogger(__name__)

MASK = "********"
SENSITIVE_HEADERS = frozenset(
    name.lower()
    for name in (
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "X-Twilio-Signature",
        "X-Twilio-Webhooks-Signature-Settings",
        "X-Plivo-Signature-V2",
        "X-Plivo-Signature-Ma-V2",
        "X-Plivo-Signature-V3",
        "X-Plivo-Signature-Ma-V3",
        "X-Sinch-Webhook-Signature",
        "X-Signature",
        "X-Webhook-Secret",
        "authkey",
        "api-key",
    )
)


def configured_secrets() -> list[str]:
    """Every secret value configured now, longest first (so a secret containing another is masked whole)."""
    values = {getattr(settings, name, "") for name in settings.SECRET_SETTINGS}
    return sorted((v for v in values if v and len(v) >= 4), key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    for secret in configured_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_headers(headers: dict[str, str], secrets: list[str]) -> dict[str, str]:
    return {
        name: MASK if name.lower() in SENSITIVE_HEADERS else redact(str(value), secrets)
        for name, value in headers.items()
    }


def _format(headers: dict[str, str], body: str, secrets: list[str]) -> str:
    head = "\n".join(f"{k}: {v}" for k, v in redact_headers(headers, secrets).items())
    return f"{head}\n\n{redact(body, secrets)}" if head else redact(body, secrets)


def channel_log_exchanges(*, provider: str, message_id: int | None, exchanges: tuple[HttpExchange, ...]) -> None:
    """Store the API calls one send made."""
    secrets = configured_secrets()
    ChannelLog.objects.bulk_create(
        ChannelLog(
            kind=ChannelLog.Kind.SEND,
            provider=provider,
            message_id=message_id,
            url=redact(exchange.url, secrets),
            request=_format(exchange.request_headers, exchange.request_body, secrets),
            response=redact(exchange.response_body, secrets),
            status_code=exchange.status_code,
            elapsed_ms=exchange.elapsed_ms,
            error=redact(exchange.error, secrets),
        )
        for exchange in exchanges
    )


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
    secrets = configured_secrets()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
    try:
        body = request.body.decode("utf-8", "replace")
    except Exception:  # the body may be unreadable (too large): log without it
        body = ""
    try:
        # A savepoint: a failed log row must not break the webhook's own transaction.
        with transaction.atomic():
            ChannelLog.objects.create(
                kind=kind,
                provider=provider,
                message_id=message_id,
                url=redact(request.get_full_path(), secrets),
                request=_format(headers, body[:20_000], secrets).replace("\x00", ""),
                response=redact(response.content.decode("utf-8", "replace")[:5_000], secrets),
                status_code=response.status_code,
                elapsed_ms=elapsed_ms,
                error=redact(error, secrets),
            )
    except Exception:  # the log is a diagnostic: losing one row must not lose the webhook's answer
        logger.exception("could not write the channel log for a %s webhook", provider)


def channel_log_purge(*, now=None) -> int:
    """Delete channel log rows older than RETENTION_PERIODS['channel_log'] days; returns the count."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.RETENTION_PERIODS["channel_log"])
    deleted, _ = ChannelLog.objects.filter(created_at__lt=cutoff).delete()
    return deleted

"""
Status callbacks: every status change of a message sent with a `callback_url` is POSTed
there as JSON, signed (delivery/signing.py), with retries and backoff.

    {"id": 42, "reference": "order-17", "status": "delivered", "error_code": "",
     "error_message": "", "at": "2026-12-01T10:00:03+00:00", "to": "+919876543210",
     "shortcode": "57675"}

How a change becomes a POST:
- `callback_event_listen` (registered in api/apps.py) hears the pipeline's events; only
  those marked `callback` (the message has a URL) cost a query. In the transaction of the
  change it stores a CallbackAttempt holding the payload as it is now, and queues
  `api.tasks.callback_deliver` on commit.
- `callback_attempt_deliver` POSTs it: a 2xx is `delivered`; anything else is tried again
  after 10 s, 20 s, 40 s ... (capped at an hour) up to CALLBACK_MAX_ATTEMPTS, then `failed`.
- `callback_sweep` sends what is due when the broker lost the task or was down.

Callback URLs are chosen by API clients, so they are called the way one calls a stranger:
https only, to public addresses, no redirects followed, a short timeout, at most
RESPONSE_EXCERPT_CHARS of the answer kept. An origin in CALLBACK_ALLOWED_ORIGINS (an
internal receiver, a test server) may be http and private, as may any with DEBUG on. With https and certificate
checks, a name that later resolves to an internal address reaches nothing that can
answer for that name.
"""

import ipaddress
import json
import logging
import socket
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from api.models import ApiClient, CallbackAttempt
from delivery.models import Message
from delivery.providers.base import outbound_url_refusal
from delivery.queueing import enqueue_on_commit, publish
from delivery.redaction import env_secret, redact
from delivery.signing import request_sign
from delivery.sweeps import Batch, periodic_run

logger = logging.getLogger(__name__)

CALLBACK_TASK = "api.tasks.callback_deliver"
RESPONSE_EXCERPT_CHARS = 500
BACKOFF_FIRST_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 3600.0


# Which URLs -----------------------------------------------------------------------------


def callback_url_refusal(url: str) -> str | None:
    """Why status callbacks may not go to `url`, or None."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname or ""
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme not in ("http", "https") or not hostname:
        return "it must be an https URL"
    if parts.username or parts.password:
        return "it may not carry credentials"
    if settings.DEBUG or outbound_url_refusal(url, settings.CALLBACK_ALLOWED_ORIGINS) is None:
        return None
    if parts.scheme != "https":
        return "it must be https"
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        if hostname.rstrip(".").lower() == "localhost" or "." not in hostname:
            return f"{hostname} is not a public host name"
        return None
    if not address.is_global:
        return f"{hostname} is not a public address"
    return None


def _addresses_refusal(url: str) -> str | None:
    """At send time: the host must resolve to public addresses only (unless its origin is allowed)."""
    if settings.DEBUG or outbound_url_refusal(url, settings.CALLBACK_ALLOWED_ORIGINS) is None:
        return None
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"{parts.hostname} does not resolve: {exc}"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global or address.is_multicast:
            return f"{parts.hostname} resolves to {address}, a private or reserved address"
    return None


def client_callback_secret(client: ApiClient) -> str:
    """The secret that signs `client`'s callbacks ("" when it has none: then none are sent)."""
    return env_secret(client.callback_secret_env) if client.callback_secret_env else ""


# Events -> attempts ---------------------------------------------------------------------


def _status_reported(name: str, fields: dict[str, Any]) -> str | None:
    """The status a pipeline event moved its message to, or None when it moved none."""
    if name == "message.queued":
        return "queued"
    if name == "message.refused":
        return "refused"
    if name == "message.sent" and fields.get("outcome") in ("sent", "failed"):
        return str(fields["outcome"])
    if name == "report.recorded" and fields.get("applied"):
        return str(fields.get("status"))
    if name == "report.applied":
        return str(fields.get("status"))
    return None


def callback_event_listen(name: str, fields: dict[str, Any]) -> None:
    """Event listener (delivery.events): a status change of a message with a callback URL -> an attempt."""
    if not fields.get("callback") or not fields.get("message_id"):
        return
    status = _status_reported(name, fields)
    if status is not None:
        callback_attempt_create(message_id=fields["message_id"], status=status)


def callback_attempt_create(*, message_id: int, status: str) -> CallbackAttempt | None:
    """
    Store the callback for `message_id` having reached `status` and queue its POST on
    commit. The payload is the message as it is now; None when it has no callback URL.
    """
    message = (
        Message.objects.filter(id=message_id)
        .exclude(callback_url="")
        .only("id", "reference", "callback_url", "error_code", "error_message", "phone", "shortcode")
        .first()
    )
    if message is None:
        return None
    now = timezone.now()
    payload = {
        "id": message.id,
        "reference": message.reference,
        "status": status,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "at": now.isoformat(),
        "to": message.phone,
        "shortcode": message.shortcode,
    }
    attempt = CallbackAttempt.objects.create(
        message_id=message.id, url=message.callback_url, event=status, payload=payload, next_retry_at=now
    )
    enqueue_on_commit(CALLBACK_TASK, attempt.id)
    return attempt


# Sending --------------------------------------------------------------------------------


def callback_retry_countdown(attempt: int) -> float:
    """Seconds before attempt number `attempt` + 1: 10, 20, 40 ... at most an hour."""
    return min(BACKOFF_FIRST_SECONDS * 2 ** max(attempt - 1, 0), BACKOFF_MAX_SECONDS)


def _message_secret(message_id: int) -> str | None:
    """The signing secret of the client that sent the message; None when no client or no secret."""
    client = ApiClient.objects.filter(messages__message_id=message_id).first()
    if client is None:
        client_id = _batch_client_id(message_id)
        client = ApiClient.objects.filter(pk=client_id).first() if client_id else None
    if client is None:
        return None
    return client_callback_secret(client) or None


def _batch_client_id(message_id: int) -> int | None:
    return Message.objects.filter(id=message_id).values_list("batch_recipient__batch__client_id", flat=True).first()


def _claim(attempt_id: int) -> CallbackAttempt | None:
    """The attempt if it is pending and due, pushed back so that a sweep leaves it alone while it is sent."""
    now = timezone.now()
    hold = now + timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS * 2 + 30)
    claimed = CallbackAttempt.objects.filter(
        id=attempt_id, status=CallbackAttempt.Status.PENDING, next_retry_at__lte=now
    ).update(next_retry_at=hold)
    return CallbackAttempt.objects.filter(id=attempt_id).first() if claimed else None


def callback_attempt_deliver(*, attempt_id: int) -> float | None:
    """
    POST one pending, due callback; returns the countdown to the next try when it must be
    tried again, else None (delivered, failed for good, or not due / already done).
    """
    attempt = _claim(attempt_id)
    if attempt is None:
        return None
    secret = _message_secret(attempt.message_id)
    refusal = callback_url_refusal(attempt.url) or _addresses_refusal(attempt.url)
    if secret is None:
        refusal = "the client's callback secret is not set"
    if refusal:
        logger.warning("callback %s for message %s refused: %s", attempt.id, attempt.message_id, refusal)
        _attempt_record(attempt, error=f"refused: {refusal}", final=True)
        return None
    body = json.dumps(attempt.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "smsgate-callbacks",
        **request_sign(secret=secret, body=body),
    }
    started = time.monotonic()
    status_code, excerpt, error = None, "", ""
    try:
        with requests.Session() as session:
            session.trust_env = False  # a proxy from the environment would reach what is refused here
            response = session.post(
                attempt.url,
                data=body,
                headers=headers,
                timeout=settings.CALLBACK_TIMEOUT_SECONDS,
                allow_redirects=False,
                stream=True,
            )
            with response:
                status_code = response.status_code
                excerpt = next(response.iter_content(RESPONSE_EXCERPT_CHARS, decode_unicode=False), b"")
                excerpt = excerpt.decode("utf-8", errors="replace")
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"
    elapsed_ms = round((time.monotonic() - started) * 1000, 3)
    if status_code is not None and 200 <= status_code < 300:
        _attempt_record(attempt, status_code=status_code, excerpt=excerpt, elapsed_ms=elapsed_ms, delivered=True)
        return None
    error = error or f"answered HTTP {status_code}"
    final = attempt.attempt + 1 >= settings.CALLBACK_MAX_ATTEMPTS
    countdown = None if final else callback_retry_countdown(attempt.attempt + 1)
    logger.info("callback %s for message %s: %s", attempt.id, attempt.message_id, error)
    _attempt_record(
        attempt,
        status_code=status_code,
        excerpt=excerpt,
        elapsed_ms=elapsed_ms,
        error=error,
        final=final,
        countdown=countdown,
    )
    return countdown


def _attempt_record(
    attempt: CallbackAttempt,
    *,
    status_code: int | None = None,
    excerpt: str = "",
    elapsed_ms: float | None = None,
    error: str = "",
    delivered: bool = False,
    final: bool = False,
    countdown: float | None = None,
) -> None:
    if delivered:
        status, next_retry_at = CallbackAttempt.Status.DELIVERED, None
    elif final:
        status, next_retry_at = CallbackAttempt.Status.FAILED, None
    else:
        status, next_retry_at = CallbackAttempt.Status.PENDING, timezone.now() + timedelta(seconds=countdown or 0)
    CallbackAttempt.objects.filter(id=attempt.id, status=CallbackAttempt.Status.PENDING).update(
        status=status,
        attempt=attempt.attempt + (0 if error.startswith("refused:") else 1),
        status_code=status_code,
        response_excerpt=redact(excerpt)[:RESPONSE_EXCERPT_CHARS],
        error=redact(error),
        elapsed_ms=elapsed_ms,
        next_retry_at=next_retry_at,
        updated_at=timezone.now(),
    )


# The sweep ------------------------------------------------------------------------------


def callback_sweep(*, now=None, limit: int = 500) -> dict:
    """Queue again pending callbacks whose time has come (the broker lost or never got them): {"requeued": n}."""
    return periodic_run(
        "callbacks",
        batch=limit,
        select=_callbacks_due,
        act=lambda attempt_id: publish(CALLBACK_TASK, attempt_id),
        now=now,
    )


def _callbacks_due(now, limit: int) -> Batch:
    # A task queued on commit runs within moments: only attempts due a while ago are lost.
    settled = now - timedelta(seconds=settings.OUTBOX_SWEEP_AFTER_SECONDS)
    due = list(
        CallbackAttempt.objects.filter(Q(next_retry_at__lte=settled), status=CallbackAttempt.Status.PENDING)
        .order_by("next_retry_at")
        .values_list("id", flat=True)[:limit]
    )
    return Batch(ids=due)

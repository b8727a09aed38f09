"""
`Idempotency-Key`: a client repeating a request (a timeout, a retry) gets the first answer
again and nothing is sent twice.

The key is claimed by inserting its row, and the request's work and its answer are written
in that same transaction. A second request with the key, even one racing the first, waits
on the unique constraint until the first commits, then reads that answer (or, if the first
rolled back, claims the key itself). The same key with another body, method or path is a
409 `idempotency_key_reused`. Keys are kept IDEMPOTENCY_KEY_HOURS (24): an older one is
treated as unused, and the hourly purge deletes it.
"""

import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status

from api.errors import ApiRefusal
from api.models import ApiClient, IdempotencyKey
from delivery.retention import batches_apply
from delivery.throttle import lock_acquire, lock_release

HEADER = "Idempotency-Key"
# A request holds its key's lock this long at most; a racer waits for it up to LOCK_WAIT_SECONDS.
LOCK_SECONDS = 60
LOCK_WAIT_SECONDS = 30
KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


def request_fingerprint(*, method: str, path: str, data: Any) -> str:
    """The hash a repeat must match: method, path and the body as parsed (key order and spacing do not count)."""
    if hasattr(data, "lists"):  # a form's QueryDict: every value of every field counts
        data = dict(data.lists())
    canonical = json.dumps([method.upper(), path, data], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key_valid(key: str) -> str:
    """The key as given, or ApiRefusal `invalid_idempotency_key` (400)."""
    if not KEY_RE.match(key):
        raise ApiRefusal(
            "invalid_idempotency_key",
            "An Idempotency-Key is 1 to 255 printable ASCII characters without spaces.",
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    return key


def _kept_since(now: datetime) -> datetime:
    return now - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)


def idempotent_answer(
    *,
    client: ApiClient,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
    produce: Callable[[], tuple[int, dict]],
) -> tuple[int, dict, bool]:
    """
    (status, body, replayed): `produce()`'s answer, run once per (client, key) within the
    keeping time, or the stored first answer to an identical request. `produce` runs inside
    the key's transaction and must return its answer, errors included, rather than raise.
    """
    idempotency_key_valid(key)
    lock = f"idempotency:{client.pk}:{hashlib.sha256(key.encode()).hexdigest()}"
    locked = _lock_wait(lock)
    try:
        return _answer_once(client=client, key=key, method=method, path=path, fingerprint=fingerprint, produce=produce)
    finally:
        if locked:
            lock_release(lock)


def _lock_wait(lock: str) -> bool:
    """
    Take the key's cache lock, waiting while a racing request holds it; False if it stays
    taken. The lock only spares the racer a blocked database write; the unique constraint
    alone decides who answers first.
    """
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not lock_acquire(lock, timeout=LOCK_SECONDS):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _answer_once(
    *, client: ApiClient, key: str, method: str, path: str, fingerprint: str, produce: Callable[[], tuple[int, dict]]
) -> tuple[int, dict, bool]:
    for _ in range(3):
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(
                    client=client, key=key, method=method.upper(), path=path[:200], request_hash=fingerprint
                )
                answer_status, body = produce()
                IdempotencyKey.objects.filter(pk=record.pk).update(response_status=answer_status, response_body=body)
                return answer_status, body, False
        except IntegrityError:
            existing = IdempotencyKey.objects.filter(client=client, key=key).first()
        if existing is None:
            continue  # the first request rolled back: this one claims the key
        if existing.created_at < _kept_since(timezone.now()):
            IdempotencyKey.objects.filter(pk=existing.pk).delete()
            continue
        if (existing.request_hash, existing.method, existing.path) != (fingerprint, method.upper(), path[:200]):
            raise ApiRefusal(
                "idempotency_key_reused",
                "This Idempotency-Key was used with another request; a repeat must send the same body.",
                status_code=status.HTTP_409_CONFLICT,
            )
        return existing.response_status, existing.response_body, True
    raise ApiRefusal(
        "idempotency_key_busy",
        "Another request with this Idempotency-Key is being handled; try again.",
        status_code=status.HTTP_409_CONFLICT,
    )


def idempotency_keys_purge(*, now: datetime | None = None) -> int:
    """Delete keys older than IDEMPOTENCY_KEY_HOURS, in small batches; returns how many."""
    rows = IdempotencyKey.objects.filter(created_at__lt=_kept_since(now or timezone.now()))
    return batches_apply(rows, lambda batch: batch.delete()[0])


def idempotency_keys_purge_run() -> dict:
    """The purge under a lock, as delivery/retention.py's purges run: {"deleted": n} or {"skipped": True}."""
    lock = "retention:idempotency_keys"
    if not lock_acquire(lock, timeout=3600):
        return {"skipped": True}
    try:
        return {"deleted": idempotency_keys_purge()}
    finally:
        lock_release(lock)

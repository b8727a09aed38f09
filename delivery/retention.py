"""
Retention: old rows are purged in small batches, each its own short transaction, so no
table is locked for long and a purge can stop at any point and resume on its next run.

    channel logs              deleted after RETENTION_PERIODS["channel_log"] days (7)
    delivery-report payloads  `raw_payload` emptied after RETENTION_PERIODS["report_payload"] days (180);
                              the report row itself stays as long as its message
    messages                  deleted after RETENTION_PERIODS["message"] days (180) with what the foreign
                              keys say: their delivery reports go too (CASCADE), channel logs,
                              suppressions and replies keep their rows and lose the link (SET_NULL);
                              reports that never matched a message go at the same age

A period of 0 days keeps those rows for ever. Each batch takes the next
RETENTION_BATCH_SIZE ids (oldest first) among the rows past the limit and acts on that id
range, re-checking the age, so rows written meanwhile are never touched. The tasks run
each purge under a cache lock (`*_run`): an overlapping run (another beat, a slow previous
run) returns {"skipped": True}.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from delivery.models import ChannelLog, DeliveryReport, Message
from delivery.throttle import lock_acquire, lock_release

# Longer than a purge takes; a run that dies holding the lock only delays the next one.
LOCK_SECONDS = 3600


def _cutoff(period: str, now: datetime | None) -> datetime | None:
    days = settings.RETENTION_PERIODS[period]
    return (now or timezone.now()) - timedelta(days=days) if days else None


def batches_apply(rows: QuerySet, act: Callable[[QuerySet], int], *, batch: int | None = None) -> int:
    """
    Apply `act` to `rows` one id range at a time, oldest first, each range in its own
    transaction; returns the sum of what `act` returned. `rows` must filter by age, so
    that the range, re-filtered, holds only rows past the limit.
    """
    size = batch or settings.RETENTION_BATCH_SIZE
    done, after = 0, 0
    while True:
        ids = list(rows.filter(id__gt=after).order_by("id").values_list("id", flat=True)[:size])
        if not ids:
            return done
        with transaction.atomic():
            done += act(rows.filter(id__gte=ids[0], id__lte=ids[-1]))
        after = ids[-1]


def _locked(name: str, run: Callable[[], dict]) -> dict:
    lock = f"retention:{name}"
    if not lock_acquire(lock, timeout=LOCK_SECONDS):
        return {"skipped": True}
    try:
        return run()
    finally:
        lock_release(lock)


def _delete(rows: QuerySet) -> int:
    return rows.delete()[1].get(rows.model._meta.label, 0)


def channel_log_purge(*, now: datetime | None = None) -> int:
    """Delete channel log rows older than RETENTION_PERIODS["channel_log"] days; returns the count."""
    if (cutoff := _cutoff("channel_log", now)) is None:
        return 0
    return batches_apply(ChannelLog.objects.filter(created_at__lt=cutoff), _delete)


def report_payload_purge(*, now: datetime | None = None) -> int:
    """Empty the raw payload of delivery reports older than RETENTION_PERIODS["report_payload"] days."""
    if (cutoff := _cutoff("report_payload", now)) is None:
        return 0
    rows = DeliveryReport.objects.filter(received_at__lt=cutoff).exclude(raw_payload={})
    return batches_apply(rows, lambda batch: batch.update(raw_payload={}))


def message_purge(*, now: datetime | None = None) -> dict:
    """
    Delete messages older than RETENTION_PERIODS["message"] days, with their delivery
    reports, and reports as old that never matched a message: {"messages": n, "reports": k}.
    """
    if (cutoff := _cutoff("message", now)) is None:
        return {"messages": 0, "reports": 0}
    reports = 0

    def delete_messages(batch: QuerySet) -> int:
        nonlocal reports
        _, counts = batch.delete()
        reports += counts.get(DeliveryReport._meta.label, 0)
        return counts.get(Message._meta.label, 0)

    messages = batches_apply(Message.objects.filter(created_at__lt=cutoff), delete_messages)
    reports += batches_apply(DeliveryReport.objects.filter(message__isnull=True, received_at__lt=cutoff), _delete)
    return {"messages": messages, "reports": reports}


def channel_log_purge_run() -> dict:
    return _locked("channel_log", lambda: {"deleted": channel_log_purge()})


def report_payload_purge_run() -> dict:
    return _locked("report_payload", lambda: {"emptied": report_payload_purge()})


def message_purge_run() -> dict:
    return _locked("message", message_purge)

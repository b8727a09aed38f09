"""
Periodic jobs that find rows the broker lost and queue their work again, and the one
shape they share (periodic_run).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from delivery.models import Message
from delivery.outbound import DELIVER_TASK
from delivery.queueing import BULK_QUEUE, REPLIES_QUEUE, publish, sweep_should_wait
from delivery.send_options import SEND_RULES
from delivery.statuses import Direction, Status
from delivery.throttle import lock_acquire, lock_release

# Longer than any run takes; a run that dies holding the lock only delays the next one.
LOCK_SECONDS = 60


@dataclass(frozen=True)
class Batch:
    """The row ids a run acts on, and counts of what choosing them did besides (e.g. {"reset": 2})."""

    ids: Sequence[int]
    counts: Mapping[str, int] = field(default_factory=dict)


def periodic_run(
    name: str,
    *,
    batch: int,
    select: Callable[[datetime, int], Batch],
    act: Callable[[int], bool],
    now: datetime | None = None,
    counted_as: str = "requeued",
) -> dict:
    """
    One run of a periodic job: select at most `batch` rows as of `now` and act on each.

    Waits, returning {"skipped": True, "backlog": n}, while the broker holds more than
    settings.SWEEP_MAX_BACKLOG tasks: rows in a long queue are slow, not lost, and queuing
    them again would only add duplicates. Runs under the cache lock `sweep:<name>`, so an
    overlapping run (another beat, a web process without a broker) returns
    {"skipped": True}. Otherwise returns the batch's counts and, under `counted_as`, how
    many rows `act` took.
    """
    if (backlog := sweep_should_wait()) is not None:
        return {"skipped": True, "backlog": backlog}
    lock = f"sweep:{name}"
    if not lock_acquire(lock, timeout=LOCK_SECONDS):
        return {"skipped": True}
    try:
        selected = select(now or timezone.now(), batch)
        return {**selected.counts, counted_as: sum(bool(act(row_id)) for row_id in selected.ids)}
    finally:
        lock_release(lock)


def outbox_sweep(*, now: datetime | None = None, limit: int = 1000) -> dict:
    """
    Queue again what the broker lost: outbound messages still `queued` after
    settings.OUTBOX_SWEEP_AFTER_SECONDS (or whose scheduled time has come), and
    `sending` ones whose worker died mid-call. {"requeued": n, "reset": k}; see
    periodic_run for when it skips.
    """
    bulk_ids: set[int] = set()

    def select(now: datetime, limit: int) -> Batch:
        batch = _outbox_due(now, limit)
        # A batch's message goes back on the bulk queue, never ahead of replies.
        bulk_ids.update(
            Message.objects.filter(id__in=batch.ids, **{f"provider_options__{SEND_RULES}__bulk": True}).values_list(
                "id", flat=True
            )
        )
        return batch

    def requeue(message_id: int) -> bool:
        return publish(DELIVER_TASK, message_id, queue=BULK_QUEUE if message_id in bulk_ids else REPLIES_QUEUE)

    return periodic_run("outbox", batch=limit, select=select, act=requeue, now=now)


def _outbox_due(now: datetime, limit: int) -> Batch:
    settled = now - timedelta(seconds=settings.OUTBOX_SWEEP_AFTER_SECONDS)
    stale_sending = Message.objects.filter(
        direction=Direction.OUTBOUND,
        status=Status.SENDING,
        updated_at__lt=now - timedelta(seconds=settings.SENDING_STALE_AFTER_SECONDS),
    )
    reset = list(stale_sending.values_list("id", flat=True)[:limit])
    Message.objects.filter(id__in=reset, status=Status.SENDING).update(status=Status.QUEUED)
    due = reset + list(
        Message.objects.filter(direction=Direction.OUTBOUND, status=Status.QUEUED, updated_at__lt=settled)
        .filter(Q(send_after__isnull=True) | Q(send_after__lte=now))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=settled))
        .exclude(id__in=reset)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    # Touched, so the next run leaves them alone while the task is on its way.
    Message.objects.filter(id__in=due).update(updated_at=now)
    return Batch(ids=due, counts={"reset": len(reset)})

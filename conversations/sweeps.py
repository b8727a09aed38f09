"""The inbound sweep: handle again what the broker lost."""

from datetime import datetime, timedelta

from django.conf import settings

from conversations.receiving import HANDLE_INBOUND_TASK
from delivery.models import Message
from delivery.queueing import INBOUND_QUEUE, publish
from delivery.statuses import Direction, Status
from delivery.sweeps import Batch, periodic_run


def inbound_sweep(*, now: datetime | None = None, limit: int = 1000) -> dict:
    """
    Queue again inbound messages still `received` after OUTBOX_SWEEP_AFTER_SECONDS: the
    broker was down, or in-process handling gave up on a busy phone or a locked database.
    {"requeued": n}; see periodic_run for when it skips.
    """
    return periodic_run(
        "inbound",
        batch=limit,
        select=_inbound_due,
        act=lambda message_id: publish(HANDLE_INBOUND_TASK, message_id, queue=INBOUND_QUEUE),
        now=now,
    )


def _inbound_due(now: datetime, limit: int) -> Batch:
    settled = now - timedelta(seconds=settings.OUTBOX_SWEEP_AFTER_SECONDS)
    due = list(
        Message.objects.filter(direction=Direction.INBOUND, status=Status.RECEIVED, updated_at__lt=settled)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    # Touched, so the next run leaves them alone while the task is on its way.
    Message.objects.filter(id__in=due).update(updated_at=now)
    return Batch(ids=due)

"""Celery tasks of bulk: each takes ids and calls one service."""

from celery import shared_task

from bulk import services
from bulk.services import DISPATCH_TASK


# Routed to the bulk queue (smsgate/celery.py). A tick that runs twice hands nobody over twice.
@shared_task(name=DISPATCH_TASK, acks_late=True)
def batch_dispatch(batch_id: int) -> dict:
    """One tick of a batch; with a broker it queues the next tick itself."""
    return services.batch_dispatch(batch_id=batch_id)


@shared_task
def batches_tick() -> dict:
    """Tick due batches: every tick on the embedded default, lost ones with a broker (beat)."""
    return services.batches_tick()

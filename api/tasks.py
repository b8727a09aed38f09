"""Celery tasks of the send API: each takes ids, calls one service, and owns its retry policy."""

import logging

from celery import current_app, shared_task

from api import callbacks
from api.callbacks import CALLBACK_TASK, callback_attempt_deliver
from api.idempotency import idempotency_keys_purge_run
from delivery.queueing import RETRIES_QUEUE

logger = logging.getLogger(__name__)


@shared_task(name=CALLBACK_TASK, acks_late=True)
def callback_deliver(attempt_id: int) -> None:
    """POST one status callback; a failure is tried again after the attempt's backoff."""
    countdown = callback_attempt_deliver(attempt_id=attempt_id)
    if countdown is None:
        return
    try:
        # Without a broker this runs at once, finds the attempt not yet due and leaves it to the sweep.
        current_app.signature(CALLBACK_TASK, args=(attempt_id,)).apply_async(countdown=countdown, queue=RETRIES_QUEUE)
    except Exception:  # the attempt is stored pending: the sweep sends it when it is due
        logger.warning("could not queue the retry of callback %s, left for the sweep", attempt_id, exc_info=True)


@shared_task(name="api.tasks.callback_sweep")
def callback_sweep() -> dict:
    """Queue again pending callbacks whose time has come (beat, or the web process)."""
    return callbacks.callback_sweep()


@shared_task(name="api.tasks.idempotency_key_purge")
def idempotency_key_purge() -> dict:
    """Delete idempotency keys older than IDEMPOTENCY_KEY_HOURS (hourly)."""
    return idempotency_keys_purge_run()

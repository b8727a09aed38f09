"""Celery tasks of the inbound pipeline: each takes ids and calls one service."""

import logging
import time

from celery import shared_task
from django.db import OperationalError

from conversations import sweeps
from conversations.handling import PhoneBusy, inbound_batch_handle, inbound_handle
from conversations.receiving import HANDLE_INBOUND_BATCH_TASK, HANDLE_INBOUND_TASK
from delivery.queueing import RETRIES_QUEUE, publish

logger = logging.getLogger(__name__)

# Pauses, in seconds, before in-process handling tries again a phone another request is
# handling or a database that stayed locked; what still fails is left for the inbound sweep.
IN_PROCESS_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)


@shared_task(name=HANDLE_INBOUND_TASK, bind=True, acks_late=True, max_retries=None)
def handle_inbound(self, message_id: int) -> bool:
    """Turn one stored inbound SMS into its reply; True when a reply was queued."""
    if self.request.is_eager:
        return _handle_in_process(message_id)
    try:
        return inbound_handle(message_id=message_id) is not None
    except PhoneBusy:
        # The same phone's earlier message is being handled: this one follows it.
        raise self.retry(countdown=0.5, queue=RETRIES_QUEUE) from None


@shared_task(name=HANDLE_INBOUND_BATCH_TASK, bind=True, acks_late=True, max_retries=None)
def handle_inbound_batch(self, message_ids: list[int]) -> int:
    """
    Handle stored inbound SMS together (the inbound dispatcher's batches: inbound_batch_handle);
    the number of replies queued. A busy phone's messages go on as their own handle_inbound
    tasks, after a pause; a database that fails sends the batch back with a pause (what was
    handled is not handled again); any other error is logged and the batch left `received`
    for the inbound sweep.
    """
    try:
        handled = inbound_batch_handle(message_ids=message_ids)
    except OperationalError:
        raise self.retry(countdown=1.0, queue=RETRIES_QUEUE) from None
    except Exception:
        logger.exception("inbound %s not handled: left for the inbound sweep", message_ids)
        return 0
    for message_id in handled.busy:
        publish(HANDLE_INBOUND_TASK, message_id, queue=RETRIES_QUEUE, countdown=0.5)
    return sum(reply is not None for reply in handled.replies.values())


def _handle_in_process(message_id: int) -> bool:
    """
    Handle an inbound SMS without a broker (the embedded default), inside the webhook's
    request. Celery's eager retry runs again at once, ignoring the countdown, so the
    pauses are taken here. The message stays `received` until handled, so one that
    still cannot be is answered by the inbound sweep, never lost.
    """
    delays = iter(IN_PROCESS_RETRY_DELAYS)
    while True:
        try:
            return inbound_handle(message_id=message_id) is not None
        except (PhoneBusy, OperationalError) as exc:
            delay = next(delays, None)
            if delay is None:
                logger.warning("inbound %s not handled yet (%r): left for the inbound sweep", message_id, exc)
                return False
            logger.info("inbound %s not handled yet (%r): trying again in %ss", message_id, exc, delay)
            time.sleep(delay)


@shared_task
def inbound_sweep() -> dict:
    """Queue again inbound messages left `received` (celery beat, or the serving process without a broker)."""
    return sweeps.inbound_sweep()

"""Celery tasks of delivery: each takes ids, calls one service, and owns its retry policy."""

import logging

from celery import Task, shared_task

from delivery import retention, sweeps
from delivery.deliver import RetryLater, message_deliver
from delivery.outbound import DELIVER_TASK
from delivery.queueing import RETRIES_QUEUE
from delivery.reports import message_fail

logger = logging.getLogger(__name__)


class DeliverTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        _deliver_failure(args[0] if args else kwargs.get("message_id"), exc)


def _deliver_failure(message_id, exc) -> None:
    """The task died of something other than a send error: the message must not stay `sending`."""
    if message_id is not None:
        logger.error("deliver(%s) failed: %r", message_id, exc)
        message_fail(message_id=message_id, code="internal_error", reason=repr(exc)[:500])


# The attempt count lives on the Message (settings.DELIVER_MAX_ATTEMPTS), so Celery's own
# retry limit is off: a throttled message waits as long as it must.
@shared_task(name=DELIVER_TASK, bind=True, base=DeliverTask, max_retries=None, acks_late=True)
def deliver(self, message_id: int) -> str:
    """Hand one outbound message to its provider; transient failures come back with backoff."""
    try:
        return message_deliver(message_id=message_id)
    except RetryLater as exc:
        raise self.retry(countdown=exc.countdown, queue=RETRIES_QUEUE) from None


@shared_task
def outbox_sweep() -> dict:
    """Queue again outbound messages the broker lost or that waited for their time (beat, or the web process)."""
    return sweeps.outbox_sweep()


@shared_task
def channel_log_purge() -> dict:
    """Delete old channel log rows (beat, hourly): {"deleted": n}."""
    return retention.channel_log_purge_run()


@shared_task
def report_payload_purge() -> dict:
    """Empty old delivery reports' raw payloads (beat, hourly): {"emptied": n}."""
    return retention.report_payload_purge_run()


@shared_task
def message_purge() -> dict:
    """Delete old messages with their reports (beat, hourly): {"messages": n, "reports": k}."""
    return retention.message_purge_run()

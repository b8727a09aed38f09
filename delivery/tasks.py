import logging
import random

from celery import Task, shared_task
from django.conf import settings

from delivery.providers.base import TransientSendError

logger = logging.getLogger(__name__)


def retry_countdown(retries: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter (1 s, 2 s, 4 s ... capped at 5 min); a provider's Retry-After wins."""
    if retry_after is not None:
        return min(retry_after, 3600.0)
    base = min(2.0**retries, 300.0)
    return base + random.uniform(0, base / 2)


class DeliverTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        _deliver_failure(args[0] if args else kwargs.get("message_id"), exc)


def _deliver_failure(message_id, exc) -> None:
    """The task died with something other than a send error: the message must not stay `sending`."""
    from delivery.services import message_fail

    if message_id is not None:
        logger.error("deliver(%s) failed: %r", message_id, exc)
        message_fail(message_id=message_id, code="internal_error", reason=repr(exc)[:500])


@shared_task(
    bind=True,
    base=DeliverTask,
    max_retries=settings.DELIVER_MAX_RETRIES,
    acks_late=True,
)
def deliver(self, message_id: int) -> str:
    """Hand one outbound message to its provider; retries transient failures with backoff."""
    from delivery.services import message_deliver

    try:
        return message_deliver(
            message_id=message_id,
            final_attempt=self.request.retries >= self.max_retries,
        )
    except TransientSendError as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries, exc.retry_after)) from None

"""
Queue tasks after the transaction commits, and never let a broker outage fail a request.

Tasks are named, not imported: a service queues "delivery.tasks.deliver" while
delivery.tasks imports the service, so the two never import each other. The Celery app is
the current one (the project's, once it is loaded), so no app imports the project package.
"""

import logging

from celery import current_app
from django.conf import settings
from django.db import transaction
from kombu.exceptions import KombuError

logger = logging.getLogger(__name__)


def publish(task_name: str, *args) -> bool:
    """
    Send the task named `task_name` to the broker now (or run it here when tasks run
    eagerly). False (logged) when the broker cannot be reached: the row stays pending and
    a sweep queues it again.
    """
    try:
        current_app.signature(task_name, args=args).apply_async()
    except (KombuError, OSError) as exc:
        logger.error("could not queue %s%s, left for the sweep: %s", task_name, args, exc)
        return False
    except Exception:
        # Whatever the broker client raises, the row is stored and the sweep will find it.
        logger.exception("could not queue %s%s, left for the sweep", task_name, args)
        return False
    return True


def enqueue_on_commit(task_name: str, *args) -> None:
    """Queue the task named `task_name` once the current transaction commits, so the worker finds the row."""
    transaction.on_commit(lambda: publish(task_name, *args))


def broker_backlog() -> int:
    """Messages waiting in the default task queue (0 when tasks run in-process or it cannot be read)."""
    app = current_app
    if app.conf.task_always_eager:
        return 0
    try:
        with app.connection_for_write() as connection:
            declared = connection.default_channel.queue_declare(queue=app.conf.task_default_queue, passive=True)
            return int(declared.message_count)
    except Exception:  # an unreachable broker is the health check's business; the sweep just tries
        logger.warning("could not read the broker's queue length", exc_info=True)
        return 0


def sweep_should_wait() -> int | None:
    """
    The backlog when it is over settings.SWEEP_MAX_BACKLOG, else None. Rows that wait in
    a long queue are not lost: re-queuing them would only add duplicate work to the queue.
    """
    backlog = broker_backlog()
    return backlog if backlog > settings.SWEEP_MAX_BACKLOG else None

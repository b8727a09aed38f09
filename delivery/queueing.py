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

# The Celery queue of batch traffic (a batch's dispatcher and its messages' deliveries), so
# that a reply's delivery, on the default queue, never waits behind a batch.
BULK_QUEUE = "bulk"


def publish(task_name: str, *args, queue: str | None = None, countdown: float | None = None) -> bool:
    """
    Send the task named `task_name` to the broker now (or run it here when tasks run
    eagerly), on `queue` (None: the task's own route, else the default queue), to run
    after `countdown` seconds. False (logged) when the broker cannot be reached: the row
    stays pending and a sweep queues it again.
    """
    options = {key: value for key, value in (("queue", queue), ("countdown", countdown)) if value is not None}
    try:
        current_app.signature(task_name, args=args).apply_async(**options)
    except (KombuError, OSError) as exc:
        logger.error("could not queue %s%s, left for the sweep: %s", task_name, args, exc)
        return False
    except Exception:
        # Whatever the broker client raises, the row is stored and the sweep will find it.
        logger.exception("could not queue %s%s, left for the sweep", task_name, args)
        return False
    return True


def enqueue_on_commit(task_name: str, *args, queue: str | None = None) -> None:
    """Queue the task named `task_name` (on `queue`) once the transaction commits, so the worker finds the row."""
    transaction.on_commit(lambda: publish(task_name, *args, queue=queue))


def tasks_run_in_process() -> bool:
    """
    True on the embedded default (no broker): a task runs at once, here, and a countdown is
    not waited for, so work that must wait is left to the periodic jobs instead.
    """
    return bool(current_app.conf.task_always_eager)


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

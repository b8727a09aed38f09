"""
Queue tasks after the transaction commits, and never let a broker outage fail a request.

Tasks are named, not imported: a service queues "delivery.tasks.deliver" while
delivery.tasks imports the service, so the two never import each other. The Celery app is
the current one (the project's, once it is loaded), so no app imports the project package.
"""

import contextlib
import logging

from celery import current_app
from django.conf import settings
from django.db import transaction
from kombu.exceptions import KombuError

logger = logging.getLogger(__name__)

# The Celery queues, each consumed by workers of its own in production (docker-compose.yml)
# so that one kind of work never waits behind another; smsgate/celery.py declares and routes
# them. A worker started without -Q consumes them all, the default queue included.
# Inbound SMS being handled (conversations.tasks.handle_inbound*): the first step of a reply.
INBOUND_QUEUE = "inbound"
# Replies' deliveries (delivery.tasks.deliver unless the message is batch traffic).
REPLIES_QUEUE = "replies"
# Batch traffic: a batch's dispatcher and its messages' deliveries, never ahead of a reply.
BULK_QUEUE = "bulk"
# Every retry after a countdown (a busy phone, a gateway's 5xx, a throttled send, a failed
# callback): a task waiting for its time is held by a retries worker, not by one that
# should be taking fresh work.
RETRIES_QUEUE = "retries"
# Celery's default queue (task_default_queue) carries the rest: periodic jobs, sweeps,
# status callbacks, queued handlers.
DEFAULT_QUEUE = "celery"
TASK_QUEUES = (DEFAULT_QUEUE, INBOUND_QUEUE, REPLIES_QUEUE, BULK_QUEUE, RETRIES_QUEUE)


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
    """Messages waiting in all the task queues (0 when tasks run in-process or they cannot be read)."""
    app = current_app
    if app.conf.task_always_eager:
        return 0
    try:
        with app.connection_for_write() as connection:
            return sum(_queue_length(connection, name) for name in TASK_QUEUES)
    except Exception:  # an unreachable broker is the health check's business; the sweep just tries
        logger.warning("could not read the broker's queue length", exc_info=True)
        return 0


def _queue_length(connection, name: str) -> int:
    """
    Messages waiting in queue `name`; 0 when it does not exist (Redis drops an empty list). A
    channel of its own: RabbitMQ closes the channel a passive declare of a missing queue fails on.
    """
    channel = connection.channel()
    try:
        return int(channel.queue_declare(queue=name, passive=True).message_count)
    except connection.channel_errors:
        return 0
    finally:
        with contextlib.suppress(*connection.connection_errors, *connection.channel_errors):
            channel.close()


def sweep_should_wait() -> int | None:
    """
    The backlog when it is over settings.SWEEP_MAX_BACKLOG, else None. Rows that wait in
    a long queue are not lost: re-queuing them would only add duplicate work to the queue.
    """
    backlog = broker_backlog()
    return backlog if backlog > settings.SWEEP_MAX_BACKLOG else None

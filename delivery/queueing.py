"""Queue tasks after the transaction commits, and never let a broker outage fail a request."""

import logging

from django.db import transaction
from kombu.exceptions import KombuError

logger = logging.getLogger(__name__)


def publish(task, *args) -> bool:
    """Send a task to the broker now. False (logged) when the broker cannot be reached:
    the row stays pending and the outbox sweep queues it again."""
    try:
        task.delay(*args)
    except (KombuError, OSError) as exc:
        logger.error("could not queue %s%s, left for the sweep: %s", task.name, args, exc)
        return False
    except Exception:
        # Whatever the broker client raises, the row is stored and the sweep will find it.
        logger.exception("could not queue %s%s, left for the sweep", task.name, args)
        return False
    return True


def enqueue_on_commit(task, *args) -> None:
    """Queue `task(*args)` once the current transaction commits, so the worker finds the row."""
    transaction.on_commit(lambda: publish(task, *args))

"""
The `queue` handler: a command answered later by a Celery task, for work too heavy to
do while the subscriber waits.

A command's config: `task` (the task's registered name), optionally `ack`, a text sent
at once ("We are preparing your statement."), and `fallback`, the reply when the task
cannot be started. Without `ack` the SMS gets no reply now. The task receives one argument, the dict

    {"phone": "+91...", "shortcode": "57675", "code": "7", "args": "...", "message_id": 42}

(`message_id` is the inbound Message) and replies, when it is done, through
conversations.handling.reply_later_send(message_id=..., text=...), which sends it the
way every reply goes: the shortcode's gateway, DLT and suppression rules, `in_reply_to`
the inbound.

Only tasks meant for it can be named: a name in settings.QUEUE_HANDLER_TASKS, or one
that starts with QUEUED_TASK_PREFIX ("queued."), which a task's author gives it on
purpose (`@shared_task(name="queued.demo.balance_reply")`). Any other task name is
refused when the Command is saved and again before each run, so business staff cannot
start arbitrary work (a purge, a bulk send) from an SMS.

Lifecycle of the work: the handler only records it (queued_work_collect, bound by the
inbound handling around the step). The handling publishes it by name inside the same
transaction that stores the `ack` and marks the inbound handled: when the broker cannot
take it, that transaction rolls back and the inbound stays `received` for the inbound
sweep, so nothing is lost. The price, as with the `http` handler: a run that dies after
publishing and before committing is run again, and the task may see the SMS twice.
"""

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError

from commands.handlers import UNAVAILABLE_REPLY, HandlerContext, HandlerResult, handler
from delivery.queueing import publish

logger = logging.getLogger(__name__)

QUEUED_TASK_PREFIX = "queued."
TASK_NAME_MAX = 200


@dataclass(frozen=True)
class QueuedWork:
    """One task to publish for the inbound being handled: its name and its single argument."""

    task: str
    payload: dict[str, Any]


@dataclass
class _Collector:
    message_id: int
    work: list[QueuedWork]


_collector: ContextVar[_Collector | None] = ContextVar("queue_handler_collector", default=None)


class QueuedWorkNotPublished(Exception):
    """The broker did not take the work: the handling rolls back and leaves the inbound for the sweep."""


def queue_task_allowed(name: str) -> bool:
    """Whether a `queue` command may name task `name`: allowlisted, or named for it by its author."""
    return name in settings.QUEUE_HANDLER_TASKS or (name.startswith(QUEUED_TASK_PREFIX) and name != QUEUED_TASK_PREFIX)


def queue_config_validate(config: Any) -> None:
    """Raise ValidationError listing what makes a `queue` command's config unusable or unsafe."""
    if not isinstance(config, dict):
        raise ValidationError("The queue handler's options must be a JSON object.")
    errors = []
    task = config.get("task")
    if not isinstance(task, str) or not task.strip() or len(task) > TASK_NAME_MAX:
        errors.append("'task' must name the Celery task that does the work.")
    elif not queue_task_allowed(task):
        errors.append(
            f"'task' {task!r} is not a task commands may start: name one in QUEUE_HANDLER_TASKS "
            f"or one whose name starts with {QUEUED_TASK_PREFIX!r}."
        )
    ack = config.get("ack")
    if ack is not None and not isinstance(ack, str):
        errors.append("'ack' must be a text (the reply sent at once), or left out for no reply now.")
    fallback = config.get("fallback")
    if fallback is not None and not isinstance(fallback, str):
        errors.append("'fallback' must be a text (the reply when the task cannot be started).")
    if errors:
        raise ValidationError(errors)


@contextlib.contextmanager
def queued_work_collect(*, message_id: int) -> Iterator[list[QueuedWork]]:
    """Within the block, `queue` handlers record their work for inbound `message_id` in the list yielded."""
    collector = _Collector(message_id=message_id, work=[])
    token = _collector.set(collector)
    try:
        yield collector.work
    finally:
        _collector.reset(token)


def queued_work_publish(work: list[QueuedWork]) -> None:
    """
    Publish each piece of work by name, now (call it inside the transaction that marks the
    inbound handled). Raises QueuedWorkNotPublished when the broker does not take one.
    Without a broker the task runs here, and a failure of its own is its own (logged by
    publish): the SMS is handled all the same.
    """
    for item in work:
        if not publish(item.task, item.payload) and not current_app.conf.task_always_eager:
            raise QueuedWorkNotPublished(f"the broker did not take {item.task}")


@handler(
    "queue",
    description="Hand {phone, shortcode, code, args, message_id} to the Celery task config['task']; it replies later.",
    transactional=False,
    validate_config=queue_config_validate,
)
def queue_handler(ctx: HandlerContext) -> HandlerResult:
    config = ctx.config if isinstance(ctx.config, dict) else {}
    try:
        queue_config_validate(ctx.config)
    except ValidationError as exc:
        logger.error("queue handler for %s/%s is misconfigured: %s", ctx.shortcode, ctx.code, " ".join(exc.messages))
        return HandlerResult(reply=config.get("fallback") or UNAVAILABLE_REPLY)
    if current_app.conf.task_always_eager and config["task"] not in current_app.tasks:
        # Without a broker the task must run here; a name this process does not know would be
        # handed to no one. (With a broker the worker may know tasks this process does not.)
        logger.error("queue handler for %s/%s: task %s is not registered", ctx.shortcode, ctx.code, config["task"])
        return HandlerResult(reply=config.get("fallback") or UNAVAILABLE_REPLY)
    collector = _collector.get()
    if collector is None:
        # Only the inbound handling knows the message a later reply answers.
        logger.error("queue handler for %s/%s ran outside inbound handling", ctx.shortcode, ctx.code)
        return HandlerResult(reply=UNAVAILABLE_REPLY)
    payload = {
        "phone": ctx.phone,
        "shortcode": ctx.shortcode,
        "code": ctx.code,
        "args": ctx.args,
        "message_id": collector.message_id,
    }
    collector.work.append(QueuedWork(task=config["task"], payload=payload))
    return HandlerResult(reply=config.get("ack") or "")

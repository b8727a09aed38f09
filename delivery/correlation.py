"""
The correlation id: one id that follows an SMS from its inbound webhook to the delivery
report of its reply.

It is the inbound Message's `uuid`: the inbound carries its own, its replies (through
`in_reply_to`) and their reports carry the inbound's. A message sent with no inbound
behind it carries its own uuid. Nothing is stored for it, so rows written before it
existed have one too.

While a message is being handled or delivered, `correlation_bind` makes its id the
current one (a context variable): the JSON log formatter adds it to every plain log line
and Sentry to every error it reports.
"""

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from delivery.events import event

# No model import: the log formatter uses this module, and logging is configured before the apps load.
_current: contextvars.ContextVar[str] = contextvars.ContextVar("smsgate_correlation_id", default="")


def message_correlation_id(message: Any) -> str:
    """The correlation id of a delivery Message: its inbound's uuid for a reply, its own otherwise."""
    if message.in_reply_to_id is None:
        return str(message.uuid)
    model = type(message)
    if model.in_reply_to.is_cached(message) and message.in_reply_to is not None:
        return str(message.in_reply_to.uuid)
    inbound_uuid = model.objects.filter(id=message.in_reply_to_id).values_list("uuid", flat=True).first()
    # The inbound was deleted (retention): the reply stands for itself.
    return str(inbound_uuid or message.uuid)


def message_event(name: str, message: Any, **fields: Any) -> None:
    """Event `name` (delivery.events) about a Message: provider, shortcode, ids, phone, callback, `fields`."""
    event(
        name,
        provider=message.provider,
        shortcode=message.shortcode,
        message_id=message.id,
        correlation_id=message_correlation_id(message),
        phone=message.phone,
        # Status callbacks listen for this flag: they read the message only when it is there.
        **({"callback": True} if getattr(message, "callback_url", "") else {}),
        **fields,
    )


def correlation_id_current() -> str:
    """The correlation id bound now ("" outside any message's handling)."""
    return _current.get()


@contextlib.contextmanager
def correlation_bind(correlation_id: str) -> Iterator[str]:
    """Make `correlation_id` the current one for the block, then restore the previous one."""
    token = _current.set(correlation_id)
    try:
        yield correlation_id
    finally:
        _current.reset(token)

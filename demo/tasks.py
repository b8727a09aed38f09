"""
The demo's queued work: the example task a `queue` command starts.

`queued.demo.balance_reply` answers the balance as a heavy job would: later, from a
worker, through the pipeline's own later-reply service. Its texts are the balance
command's, so they pass the demo's DLT templates.
"""

import logging

from celery import shared_task

from commands.handlers import HandlerContext
from conversations.handling import reply_later_send
from demo.handlers import balance

logger = logging.getLogger(__name__)


@shared_task(name="queued.demo.balance_reply")
def balance_reply(payload: dict) -> int | None:
    """Reply to the SMS `payload["message_id"]` with the sender's balance; the reply's id, or None."""
    context = HandlerContext(
        shortcode=str(payload.get("shortcode", "")),
        phone=str(payload.get("phone", "")),
        code=str(payload.get("code", "")),
        args=str(payload.get("args", "")),
        config={},
    )
    reply = reply_later_send(message_id=int(payload["message_id"]), text=balance(context).reply)
    return reply.id if reply is not None else None

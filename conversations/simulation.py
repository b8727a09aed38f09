"""
Simulating an SMS: one typed message run through the whole pipeline, its replies
delivered and returned at once. `simulate_sms` (an operator's end-to-end check, replies
through the shortcode's own gateway) and the admin's simulator (replies through the
console provider, nothing leaves) both come through here; only the provider the inbound
is stored as differs (conversations/receiving.py: SIMULATOR_PROVIDER,
CONSOLE_SIMULATOR_PROVIDER).
"""

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from conversations.handling import PhoneBusy, inbound_handle
from conversations.receiving import SIMULATOR_PROVIDERS, message_receive
from delivery.deliver import message_deliver
from delivery.models import Message
from delivery.providers.base import InboundSMS


@dataclass(frozen=True)
class SimulatedSMS:
    """The stored inbound and its replies as they stand once delivered (oldest first)."""

    inbound: Message
    replies: list[Message]


class SimulationBusy(Exception):
    """The phone stayed held by another worker for a whole phone-lock lifetime."""


def sms_simulate(*, phone: str, shortcode: str, text: str, provider: str, raw: dict[str, Any]) -> SimulatedSMS:
    """
    Receive `text` from `phone` to `shortcode` as `provider` (one of SIMULATOR_PROVIDERS),
    handle it here (or wait while a worker that took it first does), and deliver its
    replies now, so they can be shown. `raw` is stored as the inbound's payload: say who
    simulated it. Raises InvalidPhoneNumber or WebhookBadRequest for input that cannot be
    stored, SimulationBusy when the phone stays held.

    A reply a `queue` command's task sends later is not among the replies: it arrives
    with the task.
    """
    assert provider in SIMULATOR_PROVIDERS, provider
    sms = InboundSMS(sender=phone, recipient=shortcode, body=text, provider_message_id=None, raw=raw)
    inbound, _ = message_receive(provider=provider, sms=sms)
    _handle_here_or_wait(inbound)
    inbound.refresh_from_db()
    replies = list(Message.objects.filter(in_reply_to=inbound).order_by("id"))
    for reply in replies:
        # The status guards make a send that already ran (an eager task, a worker) a no-op.
        message_deliver(message_id=reply.id, final_attempt=True)
        reply.refresh_from_db()
    return SimulatedSMS(inbound=inbound, replies=replies)


def _handle_here_or_wait(inbound: Message) -> None:
    """
    Handle the message here, or, while a Celery worker holds the phone (it took the
    message from the broker first), wait until the worker has handled it: once it is no
    longer `received`, inbound_handle returns at once. Gives up after the phone lock's own
    lifetime, when the lock would have expired anyway.
    """
    deadline = time.monotonic() + settings.PHONE_LOCK_SECONDS
    while True:
        try:
            inbound_handle(message_id=inbound.id)
            return
        except PhoneBusy:
            if time.monotonic() > deadline:
                raise SimulationBusy(
                    f"{inbound.phone} is still being handled elsewhere after {settings.PHONE_LOCK_SECONDS}s; "
                    f"see message {inbound.id} in the admin"
                ) from None
            time.sleep(0.1)

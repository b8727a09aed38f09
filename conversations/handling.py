"""
Handling a stored inbound SMS: one at a time per phone, in order, one reply each.

What the reply says comes from optout.py (STOP, START, HELP) or conversation.py (the
flow or command); this module decides whether to answer at all and sends the reply.
"""

import dataclasses
import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from commands.models import Shortcode
from commands.services import shortcode_get
from conversations.contacts import contact_touch
from conversations.conversation import conversation_step
from conversations.optout import opt_keyword_handle
from conversations.queue_handler import QueuedWorkNotPublished, queued_work_collect, queued_work_publish
from conversations.receiving import CONSOLE_SIMULATOR_PROVIDER, SIMULATOR_PROVIDERS
from delivery.correlation import correlation_bind, message_correlation_id, message_event
from delivery.models import Message
from delivery.outbound import message_send
from delivery.send_options import send_options_for
from delivery.statuses import Direction, Status
from delivery.throttle import lock_acquire, lock_release, window_count

logger = logging.getLogger(__name__)

# Replies to simulated SMS go through this provider: it stores and logs, and sends nothing.
SIMULATED_REPLY_PROVIDER = "console"


def inbound_handle(*, message_id: int) -> Message | None:
    """
    Handle a stored inbound SMS once and send its reply; returns the reply, if any.

    Messages from one phone to one shortcode are handled one at a time and in the
    order they were stored: under a short per-phone lock, every earlier unhandled
    message of that phone is handled first. The row lock and the `received` guard
    make a task that runs twice produce one reply. Each reply's first attempt is made
    here, still under the lock (reply_send), so a phone's replies leave in order.
    """
    # Only what the lock needs: the row itself is read under the lock.
    found = Message.objects.filter(id=message_id, direction=Direction.INBOUND, status=Status.RECEIVED)
    shortcode_phone = found.values_list("shortcode", "phone").first()
    if shortcode_phone is None:
        return None
    shortcode, phone = shortcode_phone
    lock_key = f"phone:{shortcode}:{phone}"
    if not lock_acquire(lock_key, timeout=settings.PHONE_LOCK_SECONDS):
        raise PhoneBusy(phone)
    try:
        # This message, if still `received`, and the phone's earlier ones, oldest first.
        pending = Message.objects.filter(
            direction=Direction.INBOUND, status=Status.RECEIVED, shortcode=shortcode, phone=phone, id__lte=message_id
        ).order_by("id")
        # The provider's raw payload is kept for people, never read to answer.
        for message in pending.defer("raw_payload"):
            reply = _inbound_handle_one(message)
            if message.id == message_id:
                return reply
        return None
    finally:
        lock_release(lock_key)


class PhoneBusy(Exception):
    """Another worker is handling this phone's messages; try again in a moment."""


def _inbound_handle_one(inbound: Message) -> Message | None:
    """
    Handle one stored inbound SMS, read `received` under the phone's lock: compute its
    reply with no transaction open, then store it.

    A handler may call another system (the `http` handler), so the reply text is computed
    before any transaction starts: no transaction or row lock is held while it waits.
    Handlers that write only our database run in their own transaction (handler_run).
    Then one short transaction marks the row handled if it is still `received` (one
    conditional UPDATE: the row's lock and the check at once), stores the reply and queues
    its delivery. One reply per inbound: the per-phone lock of `inbound_handle` keeps a
    phone's messages serial, and the conditional update drops the reply of a second run.
    Trade-off: a run that dies between computing and storing leaves the row `received`,
    and the next run (task retry or sweep) runs the handler again, so an endpoint may be
    called twice for one SMS.
    """
    # Every line logged while the message is handled, its reply's included, carries its id.
    with correlation_bind(message_correlation_id(inbound)):
        return _inbound_answer(inbound)


def _inbound_answer(inbound: Message) -> Message | None:
    """The rest of _inbound_handle_one, for a message still `received`; ends with one inbound.handled event."""
    started = time.monotonic()
    shortcode = shortcode_get(number=inbound.shortcode)
    status, text, is_opt_out, command = Status.HANDLED, "", False, ""
    flag = {}
    outcome = "no_reply"
    answered = False  # a subscriber's SMS the shortcode answers: its contact is remembered
    queued = []  # work `queue` commands hand to a task, published as the row is marked handled
    if shortcode is None or not shortcode.active:
        logger.warning("inbound %s to unknown or inactive shortcode %r: no reply", inbound.id, inbound.shortcode)
        outcome = "unknown_shortcode"
    elif not inbound_provider_allowed(shortcode=shortcode, provider=inbound.provider):
        flag = {
            "error_code": "provider_mismatch",
            "error_message": f"received through {inbound.provider}, but shortcode {shortcode.number} is "
            f"configured for {shortcode.provider}: not answered",
        }
        logger.warning("inbound %s %s", inbound.id, flag["error_message"])
        outcome = "provider_mismatch"
    elif _over_inbound_limit(shortcode, inbound.phone):
        logger.warning("inbound %s from %s over the rate limit: stored, not answered", inbound.id, inbound.phone)
        status = Status.RATE_LIMITED
        outcome = "rate_limited"
    else:
        answered = True
        # A `queue` command records its task here; it is published with the row's update below.
        with queued_work_collect(message_id=inbound.id) as queued:
            text, is_opt_out, command = _reply_text(shortcode, inbound)
    try:
        with transaction.atomic():
            now = timezone.now()
            marked = Message.objects.filter(id=inbound.id, status=Status.RECEIVED).update(
                status=status, handled_at=now, updated_at=now, command=command, **flag
            )
            if not marked:
                return None
            if answered:
                contact_touch(phone=inbound.phone)
            reply = None
            if text:
                reply = reply_send(shortcode=shortcode, inbound=inbound, text=text, ignore_suppression=is_opt_out)
            queued_work_publish(queued)
    except QueuedWorkNotPublished as exc:
        logger.warning("inbound %s left for the inbound sweep: %s", inbound.id, exc)
        return None
    outcome = "replied" if reply is not None else outcome
    duration_ms = round((time.monotonic() - started) * 1000, 3)
    message_event("inbound.handled", inbound, command=command, outcome=outcome, duration_ms=duration_ms)
    return reply


def inbound_provider_allowed(*, shortcode: Shortcode, provider: str) -> bool:
    """
    Whether an inbound stored as received through `provider` may be answered on `shortcode`.

    A webhook's credential reaches only the shortcodes configured for its own provider.
    The console provider sends nothing and has no webhook: its shortcodes receive through
    the generic one. The simulators (`simulate_sms`, the admin's) run on the server itself
    and reach every shortcode.
    """
    if provider == shortcode.provider or provider in SIMULATOR_PROVIDERS:
        return True
    return shortcode.provider == "console" and provider == "generic"


def _reply_text(shortcode: Shortcode, inbound: Message) -> tuple[str, bool, str]:
    """
    Opt-out and help words first, then the conversation; (text, send even to a suppressed
    number, the code of the command that answered or "").
    """
    keyword_reply = opt_keyword_handle(shortcode=shortcode, inbound=inbound)
    if keyword_reply is not None:
        return *keyword_reply, ""
    step = conversation_step(shortcode=shortcode, phone=inbound.phone, text=inbound.body, message_id=inbound.id)
    return step.text, False, step.command


def _over_inbound_limit(shortcode: Shortcode, phone: str) -> bool:
    limit = shortcode.inbound_limit_per_minute
    return bool(limit) and window_count(f"in:{shortcode.number}:{phone}", window_seconds=60) > limit


def reply_send(*, shortcode: Shortcode, inbound: Message, text: str, ignore_suppression: bool = False) -> Message:
    """
    Send a reply through the shortcode's gateway, with its sender, throughput and segment limit.

    The reply to an SMS typed into the admin's simulator (CONSOLE_SIMULATOR_PROVIDER) is
    judged by the same rules (DLT, suppression, segments) but goes through the console
    provider, which sends nothing: no SMS leaves, nothing is billed, and the shortcode's
    throughput is left to real subscribers. (`simulate_sms` is the operator's end-to-end
    check and answers through the shortcode's own gateway.)
    """
    simulated = inbound.provider == CONSOLE_SIMULATOR_PROVIDER
    options = send_options_for(shortcode, ignore_suppression=ignore_suppression)
    if simulated:
        options = dataclasses.replace(options, provider_config={}, max_mps=None)
    return message_send(
        shortcode=shortcode.number,
        phone=inbound.phone,
        body=text,
        provider=SIMULATED_REPLY_PROVIDER if simulated else shortcode.provider,
        options=options,
        in_reply_to=inbound,
        segment_limit=shortcode.segment_limit,
        # A reply's first attempt is made by the process that handled its SMS, still under
        # the phone's lock (inbound_handle), so a phone's replies leave in order.
        deliver_here=True,
    )


def reply_later_send(*, message_id: int, text: str) -> Message | None:
    """
    Send the later reply to inbound `message_id`: what a task started by a `queue` command
    sends when its work is done, through the same path as every reply (reply_send). None,
    logged, when there is nothing to answer: the message is not an inbound SMS, its
    shortcode is gone or inactive, or the text is empty.
    """
    inbound = Message.objects.filter(id=message_id, direction=Direction.INBOUND).first()
    shortcode = shortcode_get(number=inbound.shortcode) if inbound is not None else None
    if inbound is None or shortcode is None or not shortcode.active or not text.strip():
        logger.warning("later reply to message %s not sent: no inbound SMS, active shortcode or text", message_id)
        return None
    with correlation_bind(message_correlation_id(inbound)), transaction.atomic():
        return reply_send(shortcode=shortcode, inbound=inbound, text=text)

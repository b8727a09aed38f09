"""
Handling a stored inbound SMS: one at a time per phone, in order, one reply each.

What the reply says comes from optout.py (STOP, START, HELP) or conversation.py (the
flow or command); this module decides whether to answer at all and sends the reply.
"""

import dataclasses
import logging
import time

from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from commands.models import Shortcode
from commands.services import registry_pinned, shortcode_get
from conversations.contacts import contacts_touch
from conversations.conversation import conversation_step
from conversations.optout import opt_keyword_handle
from conversations.queue_handler import (
    QueuedWork,
    QueuedWorkNotPublished,
    queued_work_collect,
    queued_work_publish,
)
from conversations.receiving import CONSOLE_SIMULATOR_PROVIDER, SIMULATOR_PROVIDERS
from delivery.correlation import correlation_bind, message_correlation_id, message_event
from delivery.models import Message
from delivery.outbound import SendRequest, messages_send
from delivery.send_options import send_options_for
from delivery.statuses import Direction, Status
from delivery.throttle import locks_acquire, locks_release, window_count

logger = logging.getLogger(__name__)

# Replies to simulated SMS go through this provider: it stores and logs, and sends nothing.
SIMULATED_REPLY_PROVIDER = "console"


def inbound_handle(*, message_id: int) -> Message | None:
    """
    Handle a stored inbound SMS once and send its reply (inbound_batch_handle for one);
    returns the reply, if any. Raises PhoneBusy while another run handles its phone.
    """
    handled = inbound_batch_handle(message_ids=[message_id])
    if handled.busy:
        raise PhoneBusy(message_id)
    return handled.replies.get(message_id)


@dataclasses.dataclass(frozen=True)
class InboundBatch:
    """
    What inbound_batch_handle did: the reply of each SMS it handled (None: no reply), and
    the ids it handed back untouched, for another run (their phone was busy, or the batch
    had used half its locks' time).
    """

    replies: dict[int, Message | None]
    busy: list[int]


def inbound_batch_handle(*, message_ids: list[int]) -> InboundBatch:
    """
    Handle stored inbound SMS once each and send their replies; the ids of those whose
    phone another run is handling come back as `busy`, for the caller to try again, and
    so do those the batch did not reach within half of PHONE_LOCK_SECONDS (slow handlers
    or gateway): its locks must outlast its work.

    Messages from one phone to one shortcode are handled one at a time and in the order
    they were stored: under a short per-phone lock, every earlier unhandled message of
    that phone is handled with them. The `received` guard under a row lock makes a batch
    that runs twice produce one reply each. Each reply's first attempt is made here, in
    order, still under the locks (messages_deliver_here), so a phone's replies leave in
    order.
    """
    received = Message.objects.filter(id__in=message_ids, direction=Direction.INBOUND, status=Status.RECEIVED)
    rows = list(received.order_by("id").values_list("id", "shortcode", "phone"))
    lock_keys = {f"phone:{shortcode}:{phone}": (shortcode, phone) for _, shortcode, phone in rows}
    taken = locks_acquire(sorted(lock_keys), timeout=settings.PHONE_LOCK_SECONDS)
    deadline = time.monotonic() + settings.PHONE_LOCK_SECONDS / 2
    replies, left = {}, set()
    try:
        locked = [lock_keys[key] for key in taken]
        busy = set(lock_keys.values()) - set(locked)
        # The registry as it is now, for the whole batch: one look at its version, not one a message.
        with registry_pinned():
            if locked:
                replies, left = _inbound_answers_handle(_pending(locked, up_to=max(message_ids)), deadline=deadline)
    finally:
        locks_release(taken)
    busy_ids = [i for i, shortcode, phone in rows if (shortcode, phone) in busy or i in left]
    return InboundBatch(replies={i: replies[i] for i in message_ids if i in replies}, busy=busy_ids)


class PhoneBusy(Exception):
    """Another worker is handling this phone's messages; try again in a moment."""


def _pending(phones: list[tuple[str, str]], *, up_to: int) -> list[Message]:
    """The `received` inbound SMS of these (shortcode, phone) pairs up to id `up_to`, oldest first."""
    wanted = set(phones)
    pending = Message.objects.filter(
        direction=Direction.INBOUND,
        status=Status.RECEIVED,
        phone__in={phone for _, phone in phones},
        shortcode__in={shortcode for shortcode, _ in phones},
        id__lte=up_to,
    ).order_by("id")
    # The provider's raw payload is kept for people, never read to answer.
    return [message for message in pending.defer("raw_payload") if (message.shortcode, message.phone) in wanted]


@dataclasses.dataclass
class InboundAnswer:
    """What handling decided for one inbound SMS before anything is stored (_inbound_answer_compute)."""

    inbound: Message
    shortcode: Shortcode | None
    started: float
    status: str = Status.HANDLED
    flag: dict = dataclasses.field(default_factory=dict)
    outcome: str = "no_reply"
    answered: bool = False  # a subscriber's SMS the shortcode answers: its contact is remembered
    text: str = ""
    ignore_suppression: bool = False
    command: str = ""
    queued: list[QueuedWork] = dataclasses.field(default_factory=list)


def _inbound_answers_handle(pending: list[Message], *, deadline: float) -> tuple[dict[int, Message | None], set[int]]:
    """
    Answer stored inbound SMS read `received` under their phones' locks: compute each
    reply with no transaction open, in order, then store them all in one transaction.

    A handler may call another system (the `http` handler), so the replies are computed
    before any transaction starts: no transaction or row lock is held while one waits.
    Handlers that write only our database run in their own transaction (handler_run).
    Then one short transaction marks the rows handled if they are still `received` (read
    under a row lock), stores the replies, and publishes the work `queue` commands
    recorded; their first attempts follow its commit. One reply per inbound: the per-phone
    locks keep a phone's messages serial, and the `received` guard drops the replies of a
    second run. A message whose computing fails is logged and left `received` for the
    inbound sweep, with its phone's later ones. Trade-off: a run that dies between
    computing and storing leaves its rows `received`, and the next run (task retry or
    sweep) runs their handlers again, so an endpoint may be called twice for one SMS.
    Past `deadline` (time.monotonic()) no further message is computed: those left are
    not touched. Returns the reply of each message stored (None: handled, no reply) and
    the ids of those left.
    """
    answers, failed_phones, left = [], set(), set()
    for position, inbound in enumerate(pending):
        if answers and time.monotonic() > deadline:
            left = {message.id for message in pending[position:]}
            logger.warning("inbound %s handed back: the batch used half its phone locks' time", sorted(left))
            break
        if (inbound.shortcode, inbound.phone) in failed_phones:
            continue
        # Every line logged while the message is handled, its reply's included, carries its id.
        with correlation_bind(message_correlation_id(inbound)):
            try:
                answers.append(_inbound_answer_compute(inbound))
            except OperationalError:
                raise
            except Exception:
                logger.exception("inbound %s not handled: left for the inbound sweep", inbound.id)
                failed_phones.add((inbound.shortcode, inbound.phone))
    try:
        replies = _inbound_answers_store(answers)
    except QueuedWorkNotPublished as exc:
        logger.warning("inbound %s left for the inbound sweep: %s", [a.inbound.id for a in answers], exc)
        return {}, left
    for answer in answers:
        if answer.inbound.id not in replies:
            continue
        reply = replies[answer.inbound.id]
        with correlation_bind(message_correlation_id(answer.inbound)):
            message_event(
                "inbound.handled",
                answer.inbound,
                command=answer.command,
                outcome="replied" if reply is not None else answer.outcome,
                duration_ms=round((time.monotonic() - answer.started) * 1000, 3),
            )
    return replies, left


def _inbound_answer_compute(inbound: Message) -> InboundAnswer:
    """Decide one inbound SMS's fate and reply text, storing nothing of it (handlers may store their own)."""
    shortcode = shortcode_get(number=inbound.shortcode)
    answer = InboundAnswer(inbound=inbound, shortcode=shortcode, started=time.monotonic())
    if shortcode is None or not shortcode.active:
        logger.warning("inbound %s to unknown or inactive shortcode %r: no reply", inbound.id, inbound.shortcode)
        answer.outcome = "unknown_shortcode"
    elif not inbound_provider_allowed(shortcode=shortcode, provider=inbound.provider):
        answer.flag = {
            "error_code": "provider_mismatch",
            "error_message": f"received through {inbound.provider}, but shortcode {shortcode.number} is "
            f"configured for {shortcode.provider}: not answered",
        }
        logger.warning("inbound %s %s", inbound.id, answer.flag["error_message"])
        answer.outcome = "provider_mismatch"
    elif _over_inbound_limit(shortcode, inbound.phone):
        logger.warning("inbound %s from %s over the rate limit: stored, not answered", inbound.id, inbound.phone)
        answer.status, answer.outcome = Status.RATE_LIMITED, "rate_limited"
    else:
        answer.answered = True
        # A `queue` command records its task here; it is published as the row is marked handled.
        with queued_work_collect(message_id=inbound.id) as queued:
            answer.text, answer.ignore_suppression, answer.command = _reply_text(shortcode, inbound)
        answer.queued = queued
    return answer


def _inbound_answers_store(answers: list[InboundAnswer]) -> dict[int, Message | None]:
    """
    The transaction of _inbound_answers_handle: mark the rows still `received`, remember
    the subscribers, store the replies and publish the queued work. Returns the reply of
    each row it marked.
    """
    if not answers:
        return {}
    with transaction.atomic():
        ids = [answer.inbound.id for answer in answers]
        marked = set(
            Message.objects.select_for_update().filter(id__in=ids, status=Status.RECEIVED).values_list("id", flat=True)
        )
        answers = [answer for answer in answers if answer.inbound.id in marked]
        now = timezone.now()
        # One UPDATE per outcome: a batch's rows mostly share theirs.
        outcomes: dict[tuple, list[int]] = {}
        for answer in answers:
            outcome = (answer.status, answer.command, tuple(answer.flag.items()))
            outcomes.setdefault(outcome, []).append(answer.inbound.id)
        for (status, command, flag), outcome_ids in outcomes.items():
            Message.objects.filter(id__in=outcome_ids).update(
                status=status, handled_at=now, updated_at=now, command=command, **dict(flag)
            )
        contacts_touch(phones=[answer.inbound.phone for answer in answers if answer.answered])
        answered = [answer for answer in answers if answer.text]
        requests = [
            reply_request(
                shortcode=answer.shortcode,
                inbound=answer.inbound,
                text=answer.text,
                ignore_suppression=answer.ignore_suppression,
            )
            for answer in answered
        ]
        # A reply's first attempt is made by the process that handled its SMS, still under
        # the phone's lock (inbound_batch_handle), so a phone's replies leave in order.
        replies = messages_send(requests, deliver_here=True)
        sent = {answer.inbound.id: reply for answer, reply in zip(answered, replies, strict=True)}
        queued_work_publish([work for answer in answers for work in answer.queued])
    return {answer.inbound.id: sent.get(answer.inbound.id) for answer in answers}


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
    """Send a reply through the shortcode's gateway (reply_request), its first attempt made here."""
    request = reply_request(shortcode=shortcode, inbound=inbound, text=text, ignore_suppression=ignore_suppression)
    return messages_send([request], deliver_here=True)[0]


def reply_request(
    *, shortcode: Shortcode, inbound: Message, text: str, ignore_suppression: bool = False
) -> SendRequest:
    """
    A reply through the shortcode's gateway, with its sender, throughput and segment limit.

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
    return SendRequest(
        shortcode=shortcode.number,
        phone=inbound.phone,
        body=text,
        provider=SIMULATED_REPLY_PROVIDER if simulated else shortcode.provider,
        options=options,
        in_reply_to=inbound,
        segment_limit=shortcode.segment_limit,
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

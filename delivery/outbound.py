"""
Storing outbound messages: what is sent, what is refused before it is stored `queued`,
and sending failed ones again. The deliver task does the sending (delivery/deliver.py).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from delivery.correlation import message_event
from delivery.deliver import (
    THROTTLED,
    RetryLater,
    SendsRecord,
    message_deliver,
    message_hand_over_claimed,
    messages_claim_fresh,
    messages_release,
    messages_throughput_take,
)
from delivery.models import Message, Suppression
from delivery.queueing import BULK_QUEUE, REPLIES_QUEUE, RETRIES_QUEUE, enqueue_on_commit, publish
from delivery.reports import message_fail
from delivery.segments import segment_info, truncate_to_segments
from delivery.send_options import SendOptions, send_options_for
from delivery.statuses import Direction, Status
from delivery.suppression import suppression_reason, suppressions_find
from delivery.text import clean_text
from templates.services import promotional_window_next_start, template_resolve

logger = logging.getLogger(__name__)

# The task message_send queues, by name: delivery.tasks imports this module, not the reverse.
DELIVER_TASK = "delivery.tasks.deliver"
# Error codes of the sends we refuse ourselves (stored `refused`, never sent).
REFUSAL_CODES = ("opted_out", "dlt_no_template")
DEFAULT_SEND_OPTIONS = SendOptions()


@dataclass(frozen=True)
class SendRequest:
    """One outbound message to store and send (message_send's arguments, for messages_send)."""

    shortcode: str
    phone: str
    body: str
    provider: str
    options: SendOptions | None = None
    in_reply_to: Message | None = None
    segment_limit: int | None = None
    reference: str = ""
    callback_url: str = ""


def message_send(
    *,
    shortcode: str,
    phone: str,
    body: str,
    provider: str,
    options: SendOptions | None = None,
    in_reply_to: Message | None = None,
    segment_limit: int | None = None,
    reference: str = "",
    callback_url: str = "",
    deliver_here: bool = False,
) -> Message:
    """One message through messages_send (which states the rules)."""
    request = SendRequest(
        shortcode=shortcode,
        phone=phone,
        body=body,
        provider=provider,
        options=options,
        in_reply_to=in_reply_to,
        segment_limit=segment_limit,
        reference=reference,
        callback_url=callback_url,
    )
    return messages_send([request], deliver_here=deliver_here)[0]


# No savepoint of its own: called inside inbound handling, whose transaction it joins.
@transaction.atomic(savepoint=False)
def messages_send(requests: list[SendRequest], *, deliver_here: bool = False) -> list[Message]:
    """
    Store outbound messages (one INSERT for all) and queue their delivery once the
    transaction commits; with `deliver_here`, their first attempts are made in this
    process then, in order (messages_deliver_here), except for a shortcode whose first
    attempt failed on the gateway in the last DELIVER_HERE_PAUSE_SECONDS. Returns the
    stored messages, in the order of `requests`.

    A text longer than `segment_limit` segments is cut at a segment boundary with a
    marker (and logged). A number on the suppression list gets nothing: the message is
    stored `refused` with the reason and never queued; `options.ignore_suppression` is
    for the one confirmation an opt-out itself sends and for HELP answers, which
    carriers require at all times.

    With `options.dlt_header` (a DLT-bound shortcode's sender ID) the text must match an
    approved template for that header: the template, entity and category IDs are stored
    and travel with the send; a text that matches none is stored `refused`
    (`dlt_no_template`, with the matcher's why) and never sent. A promotional match
    outside 09:00-21:00 IST is held until the window opens (`send_after`); the outbox
    sweep sends it then.

    The options, these two rules among them, are stored on the message (SendOptions) so
    that message_deliver takes both decisions again at send time. `reference` (the
    sending system's own id) and `callback_url` (where status changes are POSTed) are
    stored as given.
    """
    messages = [_message_build(request) for request in requests]
    sends = list(zip(messages, [request.options or DEFAULT_SEND_OPTIONS for request in requests], strict=True))
    checked = {(message.phone, message.shortcode) for message, options in sends if not options.ignore_suppression}
    suppressions = suppressions_find(pairs=checked)
    for message, options in sends:
        if not options.ignore_suppression and _suppressed_refuse(message, suppressions):
            continue
        if options.dlt_header is not None:
            _dlt_stamp(message, options.dlt_header)
    Message.objects.bulk_create(messages)
    here = []
    for message, options in sends:
        if message.status == Status.REFUSED:
            message_event("message.refused", message, reason=message.error_code)
            continue
        if message.send_after is None and deliver_here and not _deliver_here_paused(message.shortcode):
            here.append(message)
        elif message.send_after is None:
            enqueue_on_commit(DELIVER_TASK, message.id, queue=deliver_queue(options))
        message_event("message.queued", message, segments=message.segments)
    if here:
        transaction.on_commit(lambda: messages_deliver_here(here))
    return messages


def messages_deliver_here(messages: list[Message]) -> dict[int, str]:
    """
    The first attempts at messages messages_send stored with `deliver_here`, in order:
    those that are still queued, due and not suppressed are claimed with one statement
    (messages_claim_fresh), each of the rest goes through message_deliver_here's own claim.
    Once an attempt has failed on its gateway (message_deliver_here's pause), the rest of
    that shortcode's are given back unsent to the deliver task instead of waiting on the
    same gateway one after another ("queued"). Never raises; a claim that fails leaves
    them `queued` for the outbox sweep. Returns what became of each, by id
    (message_deliver_here's outcomes).
    """
    try:
        claimed = messages_claim_fresh(messages)
    except Exception:
        ids = [message.id for message in messages]
        logger.exception("first attempts at messages %s not claimed: left for the outbox sweep", ids)
        return {}
    try:
        paid = messages_throughput_take([message for message in messages if message.id in claimed])
    except Exception:
        logger.exception("throughput of messages %s not taken at once: each takes its own", sorted(claimed))
        paid = set()
    outcomes, record = {}, SendsRecord()
    try:
        for message in messages:
            if message.id in claimed and _deliver_here_paused(message.shortcode):
                outcomes[message.id] = _hand_to_deliver_task(message)
            elif message.id in claimed:
                paid_for = message.id in paid
                hand_over = partial(message_hand_over_claimed, message, record=record, throughput_paid=paid_for)
                outcomes[message.id] = _attempt_here(message, hand_over)
            else:
                outcomes[message.id] = message_deliver_here(message)
    finally:
        try:
            record.flush()
        except Exception:
            logger.exception("channel log of messages %s not written", sorted(claimed))
    return outcomes


def _hand_to_deliver_task(message: Message) -> str:
    """A claimed first attempt given back unsent (`sending -> queued`, not an attempt) to the deliver task."""
    messages_release(message_ids=[message.id])
    publish(DELIVER_TASK, message.id, queue=REPLIES_QUEUE)
    return Status.QUEUED


def message_deliver_here(message: Message) -> str:
    """
    The first attempt at a message message_send stored with `deliver_here`, made in this
    process once its transaction committed instead of by a deliver task: one broker hop
    less between an SMS and its answer. The same claim and send-time rules as the task's
    (message_deliver). What must wait, throttled or after a transient failure, goes to the
    deliver task with the countdown the task's own retry would take; a task that cannot be
    queued, or a process that dies before or during the attempt, leaves the message
    `queued` (or `sending`) for the outbox sweep. Never raises: the caller's work is
    committed. Returns what message_deliver returned, or "retry".
    """
    return _attempt_here(message, lambda: message_deliver(message_id=message.id, message=message))


def _attempt_here(message: Message, attempt: Callable[[], str]) -> str:
    """Run a first attempt in process (message_deliver_here's rules for what fails)."""
    try:
        return attempt()
    except RetryLater as exc:
        if str(exc) != THROTTLED:
            _deliver_here_pause(message.shortcode)
        publish(DELIVER_TASK, message.id, queue=RETRIES_QUEUE, countdown=exc.countdown)
        return "retry"
    except Exception as exc:
        _deliver_here_pause(message.shortcode)
        # As the deliver task's on_failure: the message must not stay `sending`.
        logger.exception("first attempt at message %s failed", message.id)
        try:
            message_fail(message_id=message.id, code="internal_error", reason=repr(exc)[:500])
        except Exception:
            logger.exception("message %s left for the outbox sweep", message.id)
        return Status.FAILED


# After a first attempt in process fails for want of the gateway (down, slow, erring), this
# process leaves its shortcode's sends to the deliver task for this long: the handling of
# the next SMS does not wait on a gateway that is known to be in trouble.
DELIVER_HERE_PAUSE_SECONDS = 30.0
_deliver_here_paused_until: dict[str, float] = {}


def _deliver_here_pause(shortcode: str) -> None:
    _deliver_here_paused_until[shortcode] = time.monotonic() + DELIVER_HERE_PAUSE_SECONDS


def _deliver_here_paused(shortcode: str) -> bool:
    return time.monotonic() < _deliver_here_paused_until.get(shortcode, 0.0)


def deliver_queue(options: SendOptions) -> str:
    """The Celery queue a message's deliver task goes on: batch traffic has its own, the rest is a reply's."""
    return BULK_QUEUE if options.bulk else REPLIES_QUEUE


def shortcode_message_send(
    *, shortcode: Any, phone: str, body: str, reference: str = "", callback_url: str = ""
) -> Message:
    """
    message_send as `shortcode` (a commands.Shortcode, read by attribute) sends: its
    provider, its send options (send_options_for) and its segment limit. What the send API
    and the admin's send form send; replies add their own rules (conversations.handling).
    """
    return message_send(
        shortcode=shortcode.number,
        phone=phone,
        body=body,
        provider=shortcode.provider,
        options=send_options_for(shortcode),
        segment_limit=shortcode.segment_limit,
        reference=reference,
        callback_url=callback_url,
    )


def _text_fit(body: str, *, segment_limit: int | None, phone: str) -> str:
    text = clean_text(body)
    if segment_limit:
        text, was_cut = truncate_to_segments(text, segment_limit)
        if was_cut:
            logger.warning("reply to %s cut to %d segments (%d characters)", phone, segment_limit, len(body))
    return text


def _message_build(request: SendRequest) -> Message:
    text = _text_fit(request.body, segment_limit=request.segment_limit, phone=request.phone)
    info = segment_info(text)
    return Message(
        direction=Direction.OUTBOUND,
        status=Status.QUEUED,
        shortcode=request.shortcode,
        phone=request.phone,
        body=text,
        encoding=info.encoding,
        segments=info.segments,
        provider=request.provider,
        provider_options=(request.options or DEFAULT_SEND_OPTIONS).to_json(),
        in_reply_to=request.in_reply_to,
        reference=request.reference,
        callback_url=request.callback_url,
    )


def _suppressed_refuse(message: Message, suppressions: dict[tuple[str, str], Suppression]) -> bool:
    """Mark the message refused when its number opted out of its shortcode (suppressions_find's); True when so."""
    suppression = suppressions.get((message.phone, message.shortcode))
    if suppression is None:
        return False
    message.status = Status.REFUSED
    message.error_code = "opted_out"
    message.error_message = suppression_reason(phone=message.phone, suppression=suppression)
    logger.info("send to %s refused: opted out", message.phone)
    return True


def _dlt_stamp(message: Message, header: str) -> bool:
    """Resolve the message's DLT template; False (message marked refused) when none matches."""
    resolution = template_resolve(header=header, text=message.body)
    if not resolution.matched:
        message.status = Status.REFUSED
        message.error_code = "dlt_no_template"
        message.error_message = resolution.why
        logger.warning("reply to %s refused, no DLT template for header %s: %s", message.phone, header, resolution.why)
        return False
    message.dlt_template_id = resolution.template_id
    message.dlt_entity_id = resolution.entity_id
    message.dlt_category = resolution.category
    if resolution.promotional:
        message.send_after = promotional_window_next_start(now=timezone.now())
    return True


def messages_requeue(*, message_ids: list[int]) -> int:
    """
    Send failed (or stuck queued) outbound messages again; returns how many were queued.

    A `refused` message is never sent: neither is an older `failed` row whose error code
    is a refusal (rows stored before refusals had their own status). What is re-queued
    still goes through message_deliver's send-time checks.
    """
    requeued = 0
    for message_id in message_ids:
        with transaction.atomic():
            moved = (
                Message.objects.filter(
                    id=message_id, direction=Direction.OUTBOUND, status__in=[Status.FAILED, Status.QUEUED]
                )
                .exclude(error_code__in=REFUSAL_CODES)
                .update(
                    status=Status.QUEUED,
                    error_code="",
                    error_message="",
                    updated_at=timezone.now(),
                )
            )
            if moved:
                enqueue_on_commit(DELIVER_TASK, message_id)
                requeued += 1
    return requeued


def messages_refused_count(*, message_ids: list[int]) -> int:
    """How many of these are refusals, which messages_requeue never sends."""
    refusals = Q(status=Status.REFUSED) | Q(status=Status.FAILED, error_code__in=REFUSAL_CODES)
    return Message.objects.filter(refusals, id__in=message_ids, direction=Direction.OUTBOUND).count()

"""
Receiving an inbound SMS: store it once, whatever the provider retries, in one statement
with its webhook's log row; the inbound dispatcher queues its handling.
"""

import hashlib
import logging
import time
from contextlib import nullcontext

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from delivery.channel_log import channel_log_row_save
from delivery.correlation import message_event
from delivery.inbound_store import inbound_insert
from delivery.models import ChannelLog, Message
from delivery.phones import to_e164
from delivery.providers.base import InboundSMS, WebhookBadRequest
from delivery.queueing import enqueue_on_commit, tasks_run_in_process
from delivery.segments import segment_info
from delivery.statuses import Direction, Status
from delivery.text import clean_payload, clean_text

logger = logging.getLogger(__name__)

# The task message_receive queues, by name: conversations.tasks imports this module, not the reverse.
HANDLE_INBOUND_TASK = "conversations.tasks.handle_inbound"
# The task the inbound dispatcher queues: many stored messages, handled in turn.
HANDLE_INBOUND_BATCH_TASK = "conversations.tasks.handle_inbound_batch"
# `simulate_sms` stores its messages as this provider: a local command, not a webhook.
SIMULATOR_PROVIDER = "simulator"
# The admin's simulator stores its messages as this one: their replies go through the
# console provider (conversations/handling.py: reply_send), so no SMS leaves.
CONSOLE_SIMULATOR_PROVIDER = "simulator-console"
SIMULATOR_PROVIDERS = (SIMULATOR_PROVIDER, CONSOLE_SIMULATOR_PROVIDER)


def message_receive(*, provider: str, sms: InboundSMS, log_row: ChannelLog | None = None) -> tuple[Message, bool]:
    """
    Store an inbound SMS (with `log_row`, its webhook's channel log row) and see that it is
    handled; `(message, created)`.

    Stored `received` with no `queued_at`: the inbound dispatcher (conversations/dispatch.py)
    queues its handling. When tasks run in process (no broker) it is handled here, once the
    row commits. Idempotent on (provider, provider message id): a retried or duplicated
    webhook returns the stored row, stores only its own log row and queues nothing. Without
    a provider id, a signed request replayed while its signature is accepted counts as that
    duplicate, and so does an unsigned one with the same text from the same phone to the
    same shortcode within INBOUND_DEDUPE_SECONDS (the simulator excepted). Raises
    InvalidPhoneNumber or WebhookBadRequest for input that cannot be stored as it is.
    """
    phone = to_e164(sms.sender, region=settings.SMS_DEFAULT_REGION)
    shortcode = "".join(sms.recipient.split())
    if not shortcode or len(shortcode) > 15:
        raise WebhookBadRequest("'to' must be a shortcode or number of at most 15 characters", field="to")
    provider_message_id = clean_text(sms.provider_message_id or "").strip() or None
    if provider_message_id and len(provider_message_id) > 100:
        raise WebhookBadRequest("message id longer than 100 characters", field="id")
    body = clean_text(sms.body)
    info = segment_info(body)
    message = Message(
        direction=Direction.INBOUND,
        status=Status.RECEIVED,
        shortcode=shortcode,
        phone=phone,
        body=body,
        encoding=info.encoding,
        segments=info.segments,
        provider=provider,
        provider_message_id=provider_message_id,
        raw_payload=clean_payload(sms.raw),
    )
    # The simulator is typed at the server, not replayable over the network: a repeated
    # text there is an answer (walking a flow), never a replay.
    content_checked = provider_message_id is None and provider not in SIMULATOR_PROVIDERS
    try:
        with transaction.atomic() if content_checked else nullcontext():
            if not inbound_insert(message, log_row):
                raise _RepeatedInbound(_stored_duplicate(message))
            if content_checked:
                first = _inbound_repeat_claim(message, sms)
                if first is not None:
                    raise _RepeatedInbound(first)  # rolls this row back
    except _RepeatedInbound as repeated:
        logger.info("repeated inbound %s/%s ignored", provider, repeated.first.id)
        if log_row is not None:
            log_row.message_id = repeated.first.id
            channel_log_row_save(log_row)
        message_event("inbound.stored", repeated.first, duplicate=True)
        return repeated.first, False
    if tasks_run_in_process():
        enqueue_on_commit(HANDLE_INBOUND_TASK, message.id)
    message_event("inbound.stored", message, duplicate=False)
    return message, True


def _stored_duplicate(message: Message) -> Message:
    return Message.objects.get(
        provider=message.provider,
        direction=Direction.INBOUND,
        provider_message_id=message.provider_message_id,
    )


class _RepeatedInbound(Exception):
    def __init__(self, first: Message):
        super().__init__(first.id)
        self.first = first


def _inbound_repeat_claim(message: Message, sms: InboundSMS) -> Message | None:
    """
    Claim an id-less inbound for a while; the earlier stored message holding the claim, if any.

    A signed request is claimed by its signature for as long as the signature is accepted:
    a replay carries the same one, a new message is signed anew. Any other is claimed by
    its content (provider, phone, shortcode, text) for INBOUND_DEDUPE_SECONDS.
    `cache.add` makes the claim atomic. A claim whose message was never committed (its
    webhook failed and is being retried) or whose window has passed is taken over. The
    window is checked against the stored time too, not only the cache's expiry.
    """
    if sms.replay_key:
        window = sms.replay_window_seconds
        content = "\x00".join((message.provider, "signed", sms.replay_key))
    else:
        window = settings.INBOUND_DEDUPE_SECONDS
        content = "\x00".join((message.provider, message.phone, message.shortcode, message.body))
    if window <= 0:
        return None
    key = f"inbound-repeat:{hashlib.sha256(content.encode()).hexdigest()}"
    now = time.time()
    if cache.add(key, (message.id, now), timeout=window):
        return None
    held = cache.get(key)
    if held is not None and now - held[1] < window:
        first = Message.objects.filter(
            id=held[0],
            direction=Direction.INBOUND,
            provider=message.provider,
            provider_message_id__isnull=True,
            phone=message.phone,
            shortcode=message.shortcode,
        ).first()
        if first is not None:
            return first
    cache.set(key, (message.id, now), timeout=window)
    return None

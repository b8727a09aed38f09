"""The inbound pipeline: store an SMS, then turn it into a reply."""

import hashlib
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from commands.handlers import HANDLERS, UNAVAILABLE_REPLY, HandlerContext, HandlerResult
from commands.models import Command, Shortcode
from commands.parsing import parse_text
from commands.services import command_lookup, shortcode_get
from conversations.models import Contact, SupportTicket
from conversations.sessions import Session, session_clear, session_get, session_save
from delivery.models import Message
from delivery.phones import to_e164
from delivery.providers.base import InboundSMS, WebhookBadRequest
from delivery.queueing import enqueue_on_commit, publish, sweep_should_wait
from delivery.segments import segment_info
from delivery.services import message_send, suppression_add, suppression_remove
from delivery.text import clean_payload, clean_text
from delivery.throttle import lock_acquire, lock_release, window_count
from templates.services import TemplateRenderError, template_render

logger = logging.getLogger(__name__)


def message_receive(*, provider: str, sms: InboundSMS) -> tuple[Message, bool]:
    """
    Store an inbound SMS and queue its handling; `(message, created)`.

    Idempotent on (provider, provider message id): a retried or duplicated webhook
    returns the stored row and queues nothing. Without a provider id, a signed request
    replayed while its signature is accepted counts as that duplicate, and so does an
    unsigned one with the same text from the same phone to the same shortcode within
    INBOUND_DEDUPE_SECONDS (the simulator excepted). Raises InvalidPhoneNumber or
    WebhookBadRequest for input that cannot be stored as it is.
    """
    phone = to_e164(sms.sender, region=settings.SMS_DEFAULT_REGION)
    shortcode = "".join(sms.recipient.split())
    if not shortcode or len(shortcode) > 15:
        raise WebhookBadRequest("'to' must be a shortcode or number of at most 15 characters", field="to")
    provider_message_id = clean_text(sms.provider_message_id or "").strip() or None
    if provider_message_id and len(provider_message_id) > 100:
        raise WebhookBadRequest("message id longer than 100 characters", field="id")
    from conversations.tasks import handle_inbound as handle_inbound_task

    body = clean_text(sms.body)
    info = segment_info(body)
    try:
        with transaction.atomic():
            message = Message.objects.create(
                direction=Message.Direction.INBOUND,
                status=Message.Status.RECEIVED,
                shortcode=shortcode,
                phone=phone,
                body=body,
                encoding=info.encoding,
                segments=info.segments,
                provider=provider,
                provider_message_id=provider_message_id,
                raw_payload=clean_payload(sms.raw),
            )
            # The simulator is typed at the server, not replayable over the network: a
            # repeated text there is an answer (walking a flow), never a replay.
            if provider_message_id is None and provider != SIMULATOR_PROVIDER:
                first = _inbound_repeat_claim(message, sms)
                if first is not None:
                    raise _RepeatedInbound(first)  # rolls this row back
            enqueue_on_commit(handle_inbound_task, message.id)
    except _RepeatedInbound as repeated:
        logger.info("repeated id-less inbound %s/%s ignored", provider, repeated.first.id)
        return repeated.first, False
    except IntegrityError:
        existing = Message.objects.filter(
            provider=provider,
            direction=Message.Direction.INBOUND,
            provider_message_id=provider_message_id,
        ).first()
        if existing is None:
            raise
        logger.info("duplicate inbound %s/%s ignored", provider, provider_message_id)
        return existing, False
    return message, True


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
            direction=Message.Direction.INBOUND,
            provider=message.provider,
            provider_message_id__isnull=True,
            phone=message.phone,
            shortcode=message.shortcode,
        ).first()
        if first is not None:
            return first
    cache.set(key, (message.id, now), timeout=window)
    return None


OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def inbound_handle(*, message_id: int) -> Message | None:
    """
    Handle a stored inbound SMS once and queue its reply; returns the reply, if any.

    Messages from one phone to one shortcode are handled one at a time and in the
    order they were stored: under a short per-phone lock, every earlier unhandled
    message of that phone is handled first. The row lock and the `received` guard
    make a task that runs twice produce one reply.
    """
    inbound = Message.objects.filter(id=message_id, direction="in").first()
    if inbound is None or inbound.status != Message.Status.RECEIVED:
        return None
    lock_key = f"phone:{inbound.shortcode}:{inbound.phone}"
    if not lock_acquire(lock_key, timeout=settings.PHONE_LOCK_SECONDS):
        raise PhoneBusy(inbound.phone)
    try:
        earlier = Message.objects.filter(
            direction="in",
            status=Message.Status.RECEIVED,
            shortcode=inbound.shortcode,
            phone=inbound.phone,
            id__lt=inbound.id,
        ).order_by("id")
        for earlier_id in earlier.values_list("id", flat=True):
            _inbound_handle_one(earlier_id)
        return _inbound_handle_one(inbound.id)
    finally:
        lock_release(lock_key)


class PhoneBusy(Exception):
    """Another worker is handling this phone's messages; try again in a moment."""


def _inbound_handle_one(message_id: int) -> Message | None:
    """
    Handle one stored inbound SMS: compute its reply with no transaction open, then store it.

    A handler may call another system (the `http` handler), so the reply text is computed
    before any transaction starts: no transaction or row lock is held while it waits.
    Handlers that write only our database run in their own transaction (handler_run).
    Then one short transaction locks the row, checks it is still `received`, queues the
    reply and marks the row handled. One reply per inbound: the per-phone lock of
    `inbound_handle` keeps a phone's messages serial, and the status check under the row
    lock drops the reply of a second run. Trade-off: a run that dies between computing
    and storing leaves the row `received`, and the next run (task retry or sweep) runs
    the handler again, so an endpoint may be called twice for one SMS.
    """
    inbound = Message.objects.filter(id=message_id, direction="in").first()
    if inbound is None or inbound.status != Message.Status.RECEIVED:
        return None
    shortcode = shortcode_get(number=inbound.shortcode)
    status, text, is_opt_out = Message.Status.HANDLED, "", False
    flag = {}
    if shortcode is None or not shortcode.active:
        logger.warning("inbound %s to unknown or inactive shortcode %r: no reply", inbound.id, inbound.shortcode)
    elif not inbound_provider_allowed(shortcode=shortcode, provider=inbound.provider):
        flag = {
            "error_code": "provider_mismatch",
            "error_message": f"received through {inbound.provider}, but shortcode {shortcode.number} is "
            f"configured for {shortcode.provider}: not answered",
        }
        logger.warning("inbound %s %s", inbound.id, flag["error_message"])
    elif _over_inbound_limit(shortcode, inbound.phone):
        logger.warning("inbound %s from %s over the rate limit: stored, not answered", inbound.id, inbound.phone)
        status = Message.Status.RATE_LIMITED
    else:
        contact_touch(phone=inbound.phone)
        text, is_opt_out = _reply_text(shortcode, inbound)
    with transaction.atomic():
        locked = Message.objects.select_for_update().filter(id=inbound.id, status=Message.Status.RECEIVED).first()
        if locked is None:
            return None
        reply = None
        if text:
            reply = reply_send(shortcode=shortcode, inbound=inbound, text=text, ignore_suppression=is_opt_out)
        now = timezone.now()
        Message.objects.filter(id=inbound.id).update(status=status, handled_at=now, updated_at=now, **flag)
    return reply


# `simulate_sms` stores its messages as this provider: a local command, not a webhook.
SIMULATOR_PROVIDER = "simulator"


def inbound_provider_allowed(*, shortcode: Shortcode, provider: str) -> bool:
    """
    Whether an inbound stored as received through `provider` may be answered on `shortcode`.

    A webhook's credential reaches only the shortcodes configured for its own provider.
    The console provider sends nothing and has no webhook: its shortcodes receive through
    the generic one. The simulator runs on the server itself and reaches every shortcode.
    """
    if provider in (shortcode.provider, SIMULATOR_PROVIDER):
        return True
    return shortcode.provider == "console" and provider == "generic"


def _reply_text(shortcode: Shortcode, inbound: Message) -> tuple[str, bool]:
    """Opt-out and help words first, then the conversation; (text, send even to a suppressed number)."""
    keyword_reply = opt_keyword_handle(shortcode=shortcode, inbound=inbound)
    if keyword_reply is not None:
        return keyword_reply
    return conversation_step(shortcode=shortcode, phone=inbound.phone, text=inbound.body), False


def _over_inbound_limit(shortcode: Shortcode, phone: str) -> bool:
    limit = shortcode.inbound_limit_per_minute
    return bool(limit) and window_count(f"in:{shortcode.number}:{phone}", window_seconds=60) > limit


def reply_send(*, shortcode: Shortcode, inbound: Message, text: str, ignore_suppression: bool = False) -> Message:
    """Send a reply through the shortcode's gateway, with its sender, throughput and segment limit."""
    options = {**shortcode.provider_config, "sender": shortcode.sender, "max_mps": shortcode.max_mps}
    return message_send(
        shortcode=shortcode.number,
        phone=inbound.phone,
        body=text,
        provider=shortcode.provider,
        provider_options=options,
        in_reply_to=inbound,
        segment_limit=shortcode.segment_limit,
        ignore_suppression=ignore_suppression,
        dlt_header=shortcode.sender if shortcode.requires_dlt else None,
    )


def opt_keyword_handle(*, shortcode: Shortcode, inbound: Message) -> tuple[str, bool] | None:
    """
    STOP-type words put the number on the suppression list (one confirmation is still
    sent); START-type words take it off; HELP and INFO answer the help text, even to a
    number that opted out (DLT rules still apply). Only a whole message counts,
    case-insensitively ("stop please" is not an opt-out), as carriers and aggregators
    do. Returns (reply, ignore_suppression) or None.
    """
    word = " ".join(inbound.body.split()).upper()
    extra = {w.strip().upper() for w in shortcode.opt_out_keywords.split(",") if w.strip()}
    if word in OPT_OUT_WORDS or word in extra:
        suppression_add(
            phone=inbound.phone, shortcode="" if word == "STOPALL" else shortcode.number, keyword=word, message=inbound
        )
        session_clear(shortcode=shortcode.number, phone=inbound.phone)
        return shortcode.opt_out_reply, True
    if word in OPT_IN_WORDS:
        suppression_remove(phone=inbound.phone, shortcode=shortcode.number)
        return shortcode.opt_in_reply, False
    if word in HELP_WORDS:
        # Carriers require a HELP answer at all times, even to a number that opted out.
        return shortcode.help_text, True
    return None


def conversation_step(*, shortcode: Shortcode, phone: str, text: str) -> str:
    """
    The reply to one SMS: resume the phone's open flow, or start the command its first
    word names. Empty or unknown input gets the shortcode's own texts, never an error.
    """
    session = session_get(shortcode=shortcode.number, phone=phone)
    command = None
    if session is not None:
        command = Command.objects.filter(id=session.command_id, shortcode=shortcode, active=True).first()
        if command is None:
            session_clear(shortcode=shortcode.number, phone=phone)
    if command is not None:
        context = HandlerContext(
            shortcode=shortcode.number,
            phone=phone,
            code=session.code,
            args=text.strip(),
            config=command.config,
            step=session.step,
            state=session.state,
        )
    else:
        parsed = parse_text(text)
        if not parsed.code:
            return shortcode.menu_text
        command = command_lookup(shortcode=shortcode, parsed=parsed)
        if command is None:
            return shortcode.unknown_text
        context = HandlerContext(
            shortcode=shortcode.number,
            phone=phone,
            code=command.code,
            args=parsed.args,
            config=command.config,
        )
    result = handler_run(command=command, context=context)
    if result.values and command.config.get("template"):
        result = HandlerResult(
            reply=template_reply(command=command, values=result.values, fallback=result.reply),
            next_step=result.next_step,
            state=result.state,
        )
    if result.next_step:
        session_save(
            shortcode=shortcode.number,
            phone=phone,
            session=Session(
                command_id=command.id,
                code=context.code,
                step=result.next_step,
                state=result.state,
            ),
            ttl=shortcode.session_ttl,
        )
    elif session is not None:
        session_clear(shortcode=shortcode.number, phone=phone)
    return result.reply


def handler_run(*, command: Command, context: HandlerContext) -> HandlerResult:
    """
    Run a command's handler; a crash ends the flow with a polite reply rather than no reply.

    A handler writing our database runs in its own transaction, so a crash leaves none of
    its writes; one registered `transactional=False` (it calls another system) runs with
    no transaction open, so nothing is held while it waits.
    """
    registered = HANDLERS.get(command.handler_key)
    if registered is None:
        logger.error("command %s names unknown handler %r", command.pk, command.handler_key)
        return HandlerResult(reply=UNAVAILABLE_REPLY)
    try:
        if not registered.transactional:
            return registered.func(context)
        with transaction.atomic():
            return registered.func(context)
    except Exception:
        logger.exception("handler %r failed for %s", command.handler_key, context.phone)
        return HandlerResult(reply=UNAVAILABLE_REPLY)


def template_reply(*, command: Command, values: dict, fallback: str) -> str:
    """
    Render the approved DLT template a command's config names ("template": its DLT ID,
    "values": format strings over the handler's values, in placeholder order).
    """
    try:
        rendered = [str(spec).format(**values) for spec in command.config.get("values", [])]
        return template_render(dlt_template_id=command.config["template"], values=rendered)
    except (KeyError, IndexError, ValueError, TemplateRenderError) as exc:
        logger.error("command %s: template %r could not be rendered: %s", command.pk, command.config["template"], exc)
        return fallback


def contact_touch(*, phone: str) -> None:
    """Remember a subscriber from their first SMS (one INSERT ... ON CONFLICT DO NOTHING)."""
    Contact.objects.bulk_create([Contact(phone=phone)], ignore_conflicts=True)


def contact_register(*, phone: str, name: str) -> Contact:
    """Record a subscriber's name; registering again updates it."""
    contact, _ = Contact.objects.get_or_create(phone=phone)
    contact.name = name
    contact.registered_at = contact.registered_at or timezone.now()
    contact.full_clean()
    contact.save(update_fields=["name", "registered_at"])
    return contact


def ticket_open(*, phone: str, shortcode: str, issue: str) -> SupportTicket:
    """Open a support ticket; its reference is derived from its id so it is short and unique."""
    ticket = SupportTicket.objects.create(phone=phone, shortcode=shortcode, issue=issue)
    ticket.reference = f"T{ticket.pk:06d}"
    ticket.save(update_fields=["reference"])
    return ticket


def inbound_sweep(*, now=None, limit: int = 1000) -> dict:
    """
    Queue again inbound messages still `received` after OUTBOX_SWEEP_AFTER_SECONDS: the
    broker was down, or in-process handling gave up on a busy phone or a locked database.
    """
    from conversations.tasks import handle_inbound as handle_inbound_task

    if (backlog := sweep_should_wait()) is not None:
        return {"skipped": True, "backlog": backlog}
    if not lock_acquire("sweep:inbound", timeout=60):
        return {"skipped": True}
    try:
        now = now or timezone.now()
        settled = now - timedelta(seconds=settings.OUTBOX_SWEEP_AFTER_SECONDS)
        due = list(
            Message.objects.filter(direction="in", status=Message.Status.RECEIVED, updated_at__lt=settled)
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        Message.objects.filter(id__in=due).update(updated_at=now)
        return {"requeued": sum(publish(handle_inbound_task, message_id) for message_id in due)}
    finally:
        lock_release("sweep:inbound")

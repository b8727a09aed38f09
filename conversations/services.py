"""The inbound pipeline: store an SMS, then turn it into a reply."""

import logging

from django.conf import settings
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
from delivery.queueing import enqueue_on_commit
from delivery.services import message_send
from delivery.text import clean_payload, clean_text

logger = logging.getLogger(__name__)


def message_receive(*, provider: str, sms: InboundSMS) -> tuple[Message, bool]:
    """
    Store an inbound SMS and queue its handling; `(message, created)`.

    Idempotent on (provider, provider message id): a retried or duplicated webhook
    returns the stored row and queues nothing. Raises InvalidPhoneNumber or
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

    try:
        with transaction.atomic():
            message = Message.objects.create(
                direction=Message.Direction.INBOUND,
                status=Message.Status.RECEIVED,
                shortcode=shortcode,
                phone=phone,
                body=clean_text(sms.body),
                provider=provider,
                provider_message_id=provider_message_id,
                raw_payload=clean_payload(sms.raw),
            )
            enqueue_on_commit(handle_inbound_task, message.id)
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


def inbound_handle(*, message_id: int) -> Message | None:
    """
    Handle a stored inbound SMS once: run the conversation step and queue the reply.

    The row lock and the `received -> handled` guard make a task that runs twice
    produce one reply. Returns the reply, if any.
    """
    with transaction.atomic():
        inbound = Message.objects.select_for_update().filter(id=message_id, direction="in").first()
        if inbound is None or inbound.status != Message.Status.RECEIVED:
            return None
        shortcode = shortcode_get(number=inbound.shortcode)
        reply = None
        if shortcode is None or not shortcode.active:
            logger.warning(
                "inbound %s to unknown or inactive shortcode %r: no reply",
                inbound.id,
                inbound.shortcode,
            )
        else:
            contact_touch(phone=inbound.phone)
            text = conversation_step(shortcode=shortcode, phone=inbound.phone, text=inbound.body)
            if text:
                reply = message_send(
                    shortcode=shortcode.number,
                    phone=inbound.phone,
                    body=text,
                    provider=shortcode.provider,
                    provider_options=shortcode.provider_config,
                    in_reply_to=inbound,
                )
        Message.objects.filter(id=inbound.id).update(
            status=Message.Status.HANDLED,
            handled_at=timezone.now(),
            updated_at=timezone.now(),
        )
    return reply


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
    """Run a command's handler; a crash ends the flow with a polite reply rather than no reply."""
    registered = HANDLERS.get(command.handler_key)
    if registered is None:
        logger.error("command %s names unknown handler %r", command.pk, command.handler_key)
        return HandlerResult(reply=UNAVAILABLE_REPLY)
    try:
        with transaction.atomic():
            return registered.func(context)
    except Exception:
        logger.exception("handler %r failed for %s", command.handler_key, context.phone)
        return HandlerResult(reply=UNAVAILABLE_REPLY)


def contact_touch(*, phone: str) -> Contact:
    contact, _ = Contact.objects.get_or_create(phone=phone)
    return contact


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

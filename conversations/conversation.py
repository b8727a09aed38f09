"""
One step of a conversation: resume the phone's open flow or start the command its text
names, run the handler, and keep or clear the session.
"""

import logging
from dataclasses import dataclass

from django.db import transaction

from commands.handlers import HANDLERS, UNAVAILABLE_REPLY, HandlerContext, HandlerResult
from commands.models import Command, Shortcode
from commands.parsing import parse_text
from commands.services import command_lookup
from conversations.sessions import Session, session_clear, session_get, session_save
from templates.services import TemplateRenderError, template_render

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepReply:
    """A conversation step's reply, and the code of the command that gave it ("" for the shortcode's own texts)."""

    text: str
    command: str = ""


def conversation_step(*, shortcode: Shortcode, phone: str, text: str) -> StepReply:
    """
    The reply to one SMS: resume the phone's open flow, or start the command its first
    word names. Empty or unknown input gets the shortcode's own texts, never an error.
    The command's code travels with the reply, for the handler's timing by command: a
    configured code, never the caller's text.
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
            return StepReply(shortcode.menu_text)
        command = command_lookup(shortcode=shortcode, parsed=parsed)
        if command is None:
            return StepReply(shortcode.unknown_text)
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
    return StepReply(result.reply, command.code)


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

"""
One step of a conversation: resume the phone's open flow or start the command its text
names (or the shortcode's catch-all), run the handler or the flow, and keep or clear the
session.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from commands.handlers import HANDLERS, UNAVAILABLE_REPLY, HandlerContext, HandlerResult
from commands.models import Command, Shortcode
from commands.parsing import parse_text
from commands.services import command_get, command_lookup
from conversations.flows import FLOW_HANDLER_KEY, FlowTurn, flow_answer, flow_find, flow_start
from conversations.models import Flow
from conversations.sessions import Session, session_clear, session_open, session_save
from templates.services import TemplateRenderError, template_render

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepReply:
    """A conversation step's reply, and the code of the command that gave it ("" for the shortcode's own texts)."""

    text: str
    command: str = ""


def conversation_step(*, shortcode: Shortcode, phone: str, text: str, message_id: int | None = None) -> StepReply:
    """
    The reply to one SMS: resume the phone's open flow, or start the command its first
    word names. Empty input gets the shortcode's menu; input that names no code goes to
    the shortcode's catch-all, or gets its unknown-code text; never an error. A flow that
    timed out answers the next SMS with its time-out reply. The command's code travels
    with the reply, for the handler's timing by command: a configured code, never the
    caller's text. `message_id` is the inbound SMS, which a flow's completion records.
    """
    session, timed_out = session_open(shortcode=shortcode.number, phone=phone)
    if session is not None and session.flow_id is not None:
        return flow_resume(shortcode=shortcode, phone=phone, text=text, session=session, message_id=message_id)
    if timed_out is not None:
        flow = Flow.objects.filter(id=timed_out).first()
        if flow is not None and flow.timeout_reply.strip():
            return StepReply(flow.timeout_reply)
    command = None
    if session is not None:
        command = command_get(shortcode=shortcode, command_id=session.command_id)
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
            return catch_all_step(shortcode=shortcode, phone=phone, text=text, message_id=message_id)
        if command.handler_key == FLOW_HANDLER_KEY:
            return flow_begin(
                shortcode=shortcode,
                phone=phone,
                config=command.config,
                code=command.code,
                args=parsed.args,
                message_id=message_id,
            )
        context = HandlerContext(
            shortcode=shortcode.number,
            phone=phone,
            code=command.code,
            args=parsed.args,
            config=command.config,
        )
    result = handler_run(handler_key=command.handler_key, context=context, owner=f"command {command.pk}")
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


def catch_all_step(*, shortcode: Shortcode, phone: str, text: str, message_id: int | None) -> StepReply:
    """
    Text that names no code: the shortcode's catch-all handler answers it, or the
    unknown-code text. A catch-all flow starts afresh (its first prompt); any other
    handler gets the whole text as `args` and answers once (a multi-step catch-all is a flow).
    """
    key = shortcode.catch_all_handler.strip()
    if not key:
        return StepReply(shortcode.unknown_text)
    config = shortcode.catch_all_config if isinstance(shortcode.catch_all_config, dict) else {}
    if key == FLOW_HANDLER_KEY:
        return flow_begin(shortcode=shortcode, phone=phone, config=config, code="", args="", message_id=message_id)
    context = HandlerContext(shortcode=shortcode.number, phone=phone, code="", args=text.strip(), config=config)
    result = handler_run(handler_key=key, context=context, owner=f"shortcode {shortcode.number} catch-all")
    return StepReply(result.reply or shortcode.unknown_text)


def flow_begin(
    *, shortcode: Shortcode, phone: str, config: dict, code: str, args: str, message_id: int | None
) -> StepReply:
    """Start the flow a command's or catch-all's config names."""
    reference = config.get("flow") if isinstance(config, dict) else None
    flow = flow_find(shortcode=shortcode.number, reference=reference)
    if flow is None:
        logger.error("no active flow %r on shortcode %s", reference, shortcode.number)
        return StepReply(UNAVAILABLE_REPLY, code)
    return flow_turn_run(
        shortcode=shortcode,
        phone=phone,
        flow=flow,
        code=code,
        run=lambda: flow_start(flow=flow, shortcode=shortcode, phone=phone, args=args, message_id=message_id),
    )


def flow_resume(*, shortcode: Shortcode, phone: str, text: str, session: Session, message_id: int | None) -> StepReply:
    """The next answer of the phone's open flow (a flow deactivated or deleted meanwhile ends it)."""
    flow = Flow.objects.filter(id=session.flow_id, shortcode=shortcode, active=True).first()
    if flow is None:
        session_clear(shortcode=shortcode.number, phone=phone)
        return StepReply(UNAVAILABLE_REPLY, session.code)
    state = session.state if isinstance(session.state, dict) else {}
    answers = state.get("answers") if isinstance(state.get("answers"), dict) else {}
    return flow_turn_run(
        shortcode=shortcode,
        phone=phone,
        flow=flow,
        code=session.code,
        run=lambda: flow_answer(
            flow=flow,
            shortcode=shortcode,
            phone=phone,
            step_key=session.step,
            answers=answers,
            retries=int(state.get("retries") or 0),
            text=text,
            message_id=message_id,
        ),
    )


def flow_turn_run(*, shortcode: Shortcode, phone: str, flow: Flow, code: str, run: Callable[[], FlowTurn]) -> StepReply:
    """
    Run one turn of a flow and keep its state: a session with the flow's time-out while
    a step waits, none once the run is over. A crash ends the run with a polite reply.
    """
    try:
        turn = run()
    except Exception:
        logger.exception("flow %s failed for %s", flow.slug, phone)
        turn = FlowTurn(reply=UNAVAILABLE_REPLY)
    if turn.step is None:
        session_clear(shortcode=shortcode.number, phone=phone)
    else:
        session_save(
            shortcode=shortcode.number,
            phone=phone,
            session=Session(
                command_id=None,
                code=code,
                step=turn.step,
                state={"answers": turn.answers, "retries": turn.retries},
                flow_id=flow.id,
            ),
            ttl=flow.session_ttl,
        )
    return StepReply(turn.reply, code)


def handler_run(*, handler_key: str, context: HandlerContext, owner: str) -> HandlerResult:
    """
    Run a handler (of a command, or a shortcode's catch-all: `owner`, for the log); a
    crash ends the flow with a polite reply rather than no reply.

    A handler writing our database runs in its own transaction, so a crash leaves none of
    its writes; one registered `transactional=False` (it calls another system) runs with
    no transaction open, so nothing is held while it waits.
    """
    registered = HANDLERS.get(handler_key)
    if registered is None:
        logger.error("%s names unknown handler %r", owner, handler_key)
        return HandlerResult(reply=UNAVAILABLE_REPLY)
    try:
        if not registered.transactional:
            return registered.func(context)
        with transaction.atomic():
            return registered.func(context)
    except Exception:
        logger.exception("handler %r failed for %s", handler_key, context.phone)
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

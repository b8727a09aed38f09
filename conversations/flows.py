"""
The flow engine: runs the flows business staff define in the admin (conversations.models.Flow).

A run is a sequence of turns. `flow_start` asks the first step's prompt (or, when the
command carried text after its code, takes that as the first answer); each later SMS is
one `flow_answer`. A turn reads nothing but the definition and the session's state
(step key, answers, invalid tries) and returns a `FlowTurn`: the reply, and the step now
waiting for an answer, or None when the run is over. The caller (conversation.py) keeps
the state in the session. A run ends completed (the completion action runs and the final
reply is sent), cancelled (a cancel keyword), or given up (the retry limit). Time-outs
and opt-outs are the session's and optout.py's business.

Each input kind is a registered parser (`@input_kind`), like handlers in
commands/handlers.py: it turns the subscriber's text into the saved value or raises
InvalidAnswer. `flow_problems` lists what keeps a definition from running; the admin
refuses to save a flow that has any.
"""

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from commands.handlers import UNAVAILABLE_REPLY, HandlerContext, HandlerResult, handler
from commands.models import Shortcode
from commands.parsing import ascii_digits
from conversations.contacts import ticket_open
from conversations.http_handler import endpoint_post, endpoint_url_problem, secret_env_problem
from conversations.models import FLOW_END, Contact, Flow, FlowStep, SupportTicket
from conversations.queue_handler import QUEUED_TASK_PREFIX, queue_task_allowed
from delivery.phones import InvalidPhoneNumber, to_e164
from delivery.queueing import publish
from delivery.redaction import redact
from templates.services import TemplateRenderError, template_render, template_resolve

logger = logging.getLogger(__name__)

FLOW_HANDLER_KEY = "flow"
InputKind = FlowStep.InputKind
# Answers are one SMS; a longer text is cut rather than refused.
ANSWER_MAX_LENGTH = 500
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
# What the final reply of a ticket-opening flow may use besides the answers.
TICKET_VALUES = ("reference",)
SAMPLE_REFERENCE = "T000001"


# The definition ------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionSpec:
    value: str  # what the subscriber sends
    label: str  # what is saved ("" = the value)
    next_step: str = ""  # a step key, FLOW_END, or "" for the step's own next

    @property
    def saved(self) -> str:
        return self.label or self.value


@dataclass(frozen=True)
class StepSpec:
    key: str
    answer_key: str
    input_kind: str = InputKind.TEXT
    prompt: str = ""
    prompt_template: str = ""
    template_values: tuple[str, ...] = ()
    pattern: str = ""
    error_reply: str = ""
    retry_limit: int = 2
    next_step: str = ""
    options: tuple[OptionSpec, ...] = ()


@dataclass(frozen=True)
class FlowDefinition:
    """A flow's steps in order, each with its options: what a run reads, and what flow_problems checks."""

    steps: tuple[StepSpec, ...]
    orphan_options: tuple[tuple[str, OptionSpec], ...] = ()  # options naming no step, by step key

    def step(self, key: str) -> StepSpec | None:
        return next((s for s in self.steps if s.key == key), None)

    def default_next(self, step: StepSpec) -> str:
        """Where a step goes without a branch: its own next_step, else the next in order, else the end."""
        if step.next_step:
            return step.next_step
        keys = [s.key for s in self.steps]
        index = keys.index(step.key)
        return keys[index + 1] if index + 1 < len(keys) else FLOW_END

    def successors(self, step: StepSpec) -> set[str]:
        if step.input_kind == InputKind.CHOICE and step.options:
            return {o.next_step or self.default_next(step) for o in step.options}
        return {self.default_next(step)}


def definition_build(steps: Iterable[Any], options: Iterable[Any]) -> FlowDefinition:
    """
    A definition from FlowStep and FlowStepOption rows (saved or not: the admin validates
    what it is about to save), steps in position order, options grouped by step key.
    """
    steps = sorted(steps, key=lambda s: (s.position or 0, s.pk or 0))
    by_step: dict[str, list[OptionSpec]] = {}
    for option in sorted(options, key=lambda o: (o.position or 0, o.pk or 0)):
        by_step.setdefault(option.step_key, []).append(
            OptionSpec(value=option.value.strip(), label=option.label.strip(), next_step=option.next_step.strip())
        )
    keys = {s.key for s in steps}
    built = tuple(
        StepSpec(
            key=s.key,
            answer_key=s.answer_key,
            input_kind=s.input_kind,
            prompt=s.prompt.strip(),
            prompt_template=s.prompt_template.strip(),
            template_values=tuple(line.strip() for line in s.template_values.splitlines() if line.strip()),
            pattern=s.pattern,
            error_reply=s.error_reply.strip(),
            retry_limit=s.retry_limit or 0,
            next_step=s.next_step.strip(),
            options=tuple(by_step.get(s.key, ())),
        )
        for s in steps
    )
    orphans = tuple((key, o) for key, opts in by_step.items() if key not in keys for o in opts)
    return FlowDefinition(steps=built, orphan_options=orphans)


def flow_definition(flow: Flow) -> FlowDefinition:
    return definition_build(flow.steps.all(), flow.options.all())


# Input kinds ---------------------------------------------------------------------------


class InvalidAnswer(Exception):
    """The text is not an answer this step accepts."""


@dataclass(frozen=True)
class InputKindSpec:
    kind: str
    parse: Callable[[str, StepSpec, str], str]  # (text, step, region) -> the saved value, or InvalidAnswer
    sample: Callable[[StepSpec], str]  # a typical saved value, to check texts that show it against DLT


INPUT_KINDS: dict[str, InputKindSpec] = {}


def input_kind(kind: str, *, sample: Callable[[StepSpec], str]) -> Callable:
    """Register the parser of an input kind; kinds are unique."""

    def register(parse: Callable[[str, StepSpec, str], str]) -> Callable[[str, StepSpec, str], str]:
        assert kind not in INPUT_KINDS, f"input kind {kind!r} is registered twice"
        INPUT_KINDS[kind] = InputKindSpec(kind=kind, parse=parse, sample=sample)
        return parse

    return register


def _folded(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


@input_kind(InputKind.TEXT, sample=lambda step: "Asha")
def text_parse(text: str, step: StepSpec, region: str) -> str:
    if not text:
        raise InvalidAnswer("empty")
    return text[:ANSWER_MAX_LENGTH]


@input_kind(InputKind.NUMBER, sample=lambda step: "12")
def number_parse(text: str, step: StepSpec, region: str) -> str:
    # Digits of any script count ("१२"); thousands separators are dropped ("1,200").
    candidate = ascii_digits(text).replace(",", "").replace(" ", "")
    if not re.fullmatch(r"[+-]?\d+(\.\d+)?", candidate):
        raise InvalidAnswer("not a number")
    try:
        return str(Decimal(candidate))
    except InvalidOperation:
        raise InvalidAnswer("not a number") from None


def _option_sample(step: StepSpec) -> str:
    return step.options[0].saved if step.options else "1"


@input_kind(InputKind.CHOICE, sample=_option_sample)
def choice_parse(text: str, step: StepSpec, region: str) -> str:
    return option_chosen(text, step).saved


def option_chosen(text: str, step: StepSpec) -> OptionSpec:
    """The option a reply names, by its value or its label, case-insensitively."""
    word = ascii_digits(text).upper()
    for option in step.options:
        if word in (option.value.upper(), option.label.upper()):
            return option
    raise InvalidAnswer("not an option")


@input_kind(InputKind.REGEX, sample=lambda step: "A1")
def regex_parse(text: str, step: StepSpec, region: str) -> str:
    try:
        matched = re.fullmatch(step.pattern, text[:ANSWER_MAX_LENGTH], flags=re.IGNORECASE)
    except re.error:
        raise InvalidAnswer("the step's pattern is broken") from None
    if matched is None:
        raise InvalidAnswer("does not match")
    return matched.group(0)


# Indian usage first: day before month.
DATE_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%d/%m/%y", "%d-%m-%y", "%d %b %Y", "%d %B %Y")


@input_kind(InputKind.DATE, sample=lambda step: "2026-01-31")
def date_parse(text: str, step: StepSpec, region: str) -> str:
    candidate = ascii_digits(text)
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(candidate, fmt).date().isoformat()
        except ValueError:
            continue
    raise InvalidAnswer("not a date")


YES_WORDS = frozenset({"YES", "Y", "YEAH", "YEP", "OK", "HAAN", "HAN", "HA", "JI"})
NO_WORDS = frozenset({"NO", "N", "NOPE", "NAHI", "NAHIN", "NA"})


@input_kind(InputKind.YES_NO, sample=lambda step: "yes")
def yes_no_parse(text: str, step: StepSpec, region: str) -> str:
    word = text.upper().strip(".!")
    if word in YES_WORDS:
        return "yes"
    if word in NO_WORDS:
        return "no"
    raise InvalidAnswer("neither yes nor no")


@input_kind(InputKind.PHONE, sample=lambda step: "+919876543210")
def phone_parse(text: str, step: StepSpec, region: str) -> str:
    # A local number is read in the shortcode's country ("98765 43210" in India).
    try:
        return to_e164(ascii_digits(text).replace(" ", "").replace("-", ""), region=region)
    except InvalidPhoneNumber:
        raise InvalidAnswer("not a phone number") from None


def answer_parse(text: str, step: StepSpec, *, region: str) -> str:
    """The value `text` saves at `step`, or InvalidAnswer."""
    spec = INPUT_KINDS.get(step.input_kind)
    if spec is None:
        raise InvalidAnswer(f"unknown input kind {step.input_kind!r}")
    return spec.parse(_folded(text), step, region)


# Texts ---------------------------------------------------------------------------------


def text_render(text: str, values: dict[str, Any]) -> str:
    """`text` with each {key} replaced by its value ("" for a key no answer filled, on a branch not taken)."""
    return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), text)


# Runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowTurn:
    """What one SMS in a flow came to: the reply, and the step waiting for the next (None: the run is over)."""

    reply: str
    step: str | None = None
    answers: dict[str, str] = field(default_factory=dict)
    retries: int = 0  # invalid answers so far at `step`


def flow_find(*, shortcode: str, reference: Any) -> Flow | None:
    """The active flow a handler config names (`{"flow": <slug or id>}`) on this shortcode."""
    flows = Flow.objects.filter(shortcode__number=shortcode, active=True)
    if isinstance(reference, int) and not isinstance(reference, bool):
        return flows.filter(id=reference).first()
    if isinstance(reference, str) and reference.strip():
        text = reference.strip()
        by_slug = flows.filter(slug=text).first()
        return (
            by_slug
            if by_slug is not None or not (text.isascii() and text.isdigit())
            else flows.filter(id=int(text)).first()
        )
    return None


def flow_start(
    *, flow: Flow, shortcode: Shortcode, phone: str, args: str = "", message_id: int | None = None
) -> FlowTurn:
    """The first turn: the first step's prompt, or, with text after the command's code, that text as its answer."""
    definition = flow_definition(flow)
    if not definition.steps:
        logger.error("flow %s has no steps", flow.slug)
        return FlowTurn(reply=UNAVAILABLE_REPLY)
    first = definition.steps[0]
    if args.strip():
        return flow_answer(
            flow=flow,
            shortcode=shortcode,
            phone=phone,
            step_key=first.key,
            answers={},
            retries=0,
            text=args,
            message_id=message_id,
            definition=definition,
        )
    return _ask(flow, definition, first, answers={})


def flow_answer(
    *,
    flow: Flow,
    shortcode: Shortcode,
    phone: str,
    step_key: str,
    answers: dict[str, str],
    retries: int,
    text: str,
    message_id: int | None = None,
    definition: FlowDefinition | None = None,
) -> FlowTurn:
    """
    One answer to the step waiting at `step_key`: a cancel keyword ends the run; an
    invalid answer gets the error reply until the retry limit is passed; a valid one is
    saved and the run goes on to the next step or completes.
    """
    if " ".join(text.split()).upper() in flow.cancel_words():
        return FlowTurn(reply=flow.cancel_reply or shortcode.menu_text)
    definition = definition or flow_definition(flow)
    step = definition.step(step_key)
    if step is None:
        # The flow was edited under a waiting subscriber: the step is gone.
        logger.warning("flow %s has no step %r any more; run ended", flow.slug, step_key)
        return FlowTurn(reply=UNAVAILABLE_REPLY)
    try:
        value = answer_parse(text, step, region=shortcode.country or "IN")
    except InvalidAnswer:
        if retries >= step.retry_limit:
            return FlowTurn(reply=text_render(flow.give_up_reply, answers))
        return FlowTurn(
            reply=text_render(step.error_reply, answers), step=step.key, answers=answers, retries=retries + 1
        )
    answers = {**answers, step.answer_key: value}
    next_key = definition.default_next(step)
    if step.input_kind == InputKind.CHOICE:
        next_key = option_chosen(_folded(text), step).next_step or next_key
    if next_key == FLOW_END:
        return FlowTurn(
            reply=flow_complete(flow=flow, shortcode=shortcode, phone=phone, answers=answers, message_id=message_id)
        )
    next_step = definition.step(next_key)
    if next_step is None:
        logger.error("flow %s: step %r goes to missing step %r", flow.slug, step.key, next_key)
        return FlowTurn(reply=UNAVAILABLE_REPLY)
    return _ask(flow, definition, next_step, answers=answers)


def _ask(flow: Flow, definition: FlowDefinition, step: StepSpec, *, answers: dict[str, str]) -> FlowTurn:
    try:
        prompt = step_prompt(step, answers)
    except TemplateRenderError as exc:
        logger.error("flow %s step %r: prompt template could not be rendered: %s", flow.slug, step.key, exc)
        return FlowTurn(reply=UNAVAILABLE_REPLY)
    return FlowTurn(reply=prompt, step=step.key, answers=answers)


def step_prompt(step: StepSpec, answers: dict[str, Any]) -> str:
    """The step's question: its DLT template rendered with the answers, or its text."""
    if step.prompt_template:
        values = [text_render(spec, answers) for spec in step.template_values]
        return template_render(dlt_template_id=step.prompt_template, values=values)
    return text_render(step.prompt, answers)


def flow_payload(*, flow: Flow, shortcode: Shortcode, phone: str, answers: dict, message_id: int | None) -> dict:
    """What an endpoint or a task receives when a run completes."""
    return {
        "flow": flow.slug,
        "phone": phone,
        "shortcode": shortcode.number,
        "answers": answers,
        "message_id": message_id,
    }


def flow_complete(
    *, flow: Flow, shortcode: Shortcode, phone: str, answers: dict[str, str], message_id: int | None
) -> str:
    """
    Run the completion action and return the final reply. Writes to our database run in
    their own transaction; the endpoint is called with none open (it may take seconds).
    """
    values: dict[str, Any] = dict(answers)
    action = flow.completion_action
    if action == Flow.Action.CONTACT:
        with transaction.atomic():
            contact_answers_save(phone=phone, answers=answers)
    elif action == Flow.Action.TICKET:
        with transaction.atomic():
            ticket = ticket_from_answers(
                phone=phone, shortcode=shortcode.number, answers=answers, message_id=message_id
            )
        values["reference"] = ticket.reference
    elif action == Flow.Action.TASK:
        if not queue_task_allowed(flow.task_name):
            logger.error("flow %s names task %r, which flows may not start", flow.slug, flow.task_name)
            return UNAVAILABLE_REPLY
        payload = flow_payload(flow=flow, shortcode=shortcode, phone=phone, answers=answers, message_id=message_id)
        # Published now, after the run's own writes; a broker that refuses it gets the
        # subscriber an apology rather than a thank-you for work that will never run.
        if not publish(flow.task_name, payload) and not current_app.conf.task_always_eager:
            return UNAVAILABLE_REPLY
    elif action == Flow.Action.ENDPOINT:
        answer = endpoint_post(
            url=flow.endpoint_url,
            payload=flow_payload(flow=flow, shortcode=shortcode, phone=phone, answers=answers, message_id=message_id),
            secret_env=flow.secret_env,
            timeout=flow.endpoint_timeout,
            retries=flow.endpoint_retries,
        )
        if not answer.ok:
            logger.warning("flow %s: completion endpoint failed: %s", flow.slug, redact(answer.error))
            return UNAVAILABLE_REPLY
        if answer.reply:
            return answer.reply
    return text_render(flow.completion_reply, values) or UNAVAILABLE_REPLY


def contact_answers_save(*, phone: str, answers: dict[str, str]) -> Contact:
    """
    Keep a run's answers on the subscriber's contact (later answers replace earlier ones
    under the same key). A `name` answer also registers them, as the register flow does.
    """
    contact, _ = Contact.objects.select_for_update().get_or_create(phone=phone)
    contact.attributes = {**(contact.attributes or {}), **answers}
    name = " ".join(str(answers.get("name", "")).split())[: Contact._meta.get_field("name").max_length]
    if name:
        contact.name = name
        contact.registered_at = contact.registered_at or timezone.now()
    contact.full_clean()
    contact.save(update_fields=["attributes", "name", "registered_at"])
    return contact


def ticket_from_answers(
    *, phone: str, shortcode: str, answers: dict[str, str], message_id: int | None
) -> SupportTicket:
    """
    Open a ticket from a run's answers: the only answer is the issue; several are written
    one per line as "key: value", so the agent reads all of them.
    """
    if len(answers) == 1:
        issue = next(iter(answers.values()))
    else:
        issue = "\n".join(f"{key}: {value}" for key, value in answers.items())
    ticket = ticket_open(phone=phone, shortcode=shortcode, issue=issue)
    if message_id is not None:
        SupportTicket.objects.filter(pk=ticket.pk).update(message_id=message_id)
        ticket.message_id = message_id
    return ticket


# The `flow` handler --------------------------------------------------------------------


def flow_config_validate(config: Any) -> None:
    """Raise ValidationError unless the config names an existing flow: {"flow": "<slug or id>"}."""
    reference = config.get("flow") if isinstance(config, dict) else None
    if isinstance(reference, bool) or not isinstance(reference, str | int) or not str(reference).strip():
        raise ValidationError('The flow handler\'s options name the flow: {"flow": "<slug>"}.')
    text = str(reference).strip()
    found = Flow.objects.filter(slug=text) | (
        Flow.objects.filter(id=int(text)) if text.isascii() and text.isdigit() else Flow.objects.none()
    )
    if not found.exists():
        raise ValidationError(f"There is no flow {text!r}.")


@handler(
    FLOW_HANDLER_KEY,
    description="Start the flow config['flow'] (its slug), built in the admin under Flows.",
    # A run may end in an endpoint call; its own writes take their own transactions (flow_complete).
    transactional=False,
    validate_config=flow_config_validate,
)
def flow_handler(ctx: HandlerContext) -> HandlerResult:
    """
    Answer the first SMS of a flow. The conversation (conversation.py) starts flows
    itself, to give a run its inbound message and the flow's own time-out; this is what
    the flow key means to any other caller of the registry: the first turn, its state.
    """
    shortcode = Shortcode.objects.filter(number=ctx.shortcode).first()
    config = ctx.config if isinstance(ctx.config, dict) else {}
    flow = flow_find(shortcode=ctx.shortcode, reference=config.get("flow")) if shortcode else None
    if flow is None:
        logger.error("no active flow %r on shortcode %s", config.get("flow"), ctx.shortcode)
        return HandlerResult(reply=UNAVAILABLE_REPLY)
    turn = flow_start(flow=flow, shortcode=shortcode, phone=ctx.phone, args=ctx.args)
    state = {"flow": flow.id, "answers": turn.answers, "retries": turn.retries}
    return HandlerResult(reply=turn.reply, next_step=turn.step, state=state if turn.step else {})


# Validation ----------------------------------------------------------------------------


def flow_problems(flow: Flow, definition: FlowDefinition | None = None) -> list[str]:
    """
    What keeps `flow` (with `definition`, by default its saved steps and options) from
    running as written, one sentence each; [] when nothing does. Checked: every step has
    a prompt and a known input kind, choices have options, every branch names a step, every
    step is reachable and can reach the end (no loop without an exit), placeholders name
    saved answers, the completion action is configured, and on a DLT-bound shortcode every
    text the flow sends matches an approved template of the shortcode's header.
    """
    definition = definition if definition is not None else (flow_definition(flow) if flow.pk else FlowDefinition(()))
    problems: list[str] = []
    if not definition.steps:
        return ["A flow needs at least one step."]
    keys = [s.key for s in definition.steps]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"Two steps have the key {key!r}; keys are unique in a flow.")
    for key, option in definition.orphan_options:
        problems.append(f"Option {option.value!r} belongs to step {key!r}, which is not a step of this flow.")
    for step in definition.steps:
        problems.extend(_step_problems(definition, step))
    problems.extend(_graph_problems(definition))
    problems.extend(_completion_problems(flow, definition))
    if not problems:
        problems.extend(_template_prompt_problems(flow, definition))
    if not problems:
        problems.extend(_dlt_problems(flow, definition))
    return problems


def _step_problems(definition: FlowDefinition, step: StepSpec) -> list[str]:
    problems = []
    name = f"Step {step.key!r}"
    if not step.prompt and not step.prompt_template:
        problems.append(f"{name} has no prompt.")
    if step.input_kind not in INPUT_KINDS:
        problems.append(f"{name} has an unknown input kind {step.input_kind!r}.")
    if not step.error_reply:
        problems.append(f"{name} has no error reply.")
    if step.input_kind == InputKind.REGEX:
        try:
            re.compile(step.pattern)
        except re.error as exc:
            problems.append(f"{name}'s pattern is not a valid regular expression: {exc}.")
        if not step.pattern:
            problems.append(f"{name} checks a pattern but has none.")
    if step.input_kind == InputKind.CHOICE and not step.options:
        problems.append(f"{name} is a choice without options.")
    if step.options and step.input_kind != InputKind.CHOICE:
        problems.append(f"{name} has options but is not a choice.")
    values = [o.value.upper() for o in step.options]
    for value in sorted({v for v in values if values.count(v) > 1}):
        problems.append(f"{name} has the option {value!r} twice.")
    targets = [("", step.next_step)] + [(f" (option {o.value!r})", o.next_step) for o in step.options]
    for where, target in targets:
        if target and target != FLOW_END and definition.step(target) is None:
            problems.append(f"{name}{where} goes to {target!r}, which is not a step.")
    return problems


def _graph_problems(definition: FlowDefinition) -> list[str]:
    edges = {
        step.key: {t for t in definition.successors(step) if t == FLOW_END or definition.step(t) is not None}
        for step in definition.steps
    }
    reachable, frontier = set(), [definition.steps[0].key]
    while frontier:
        key = frontier.pop()
        if key in reachable or key == FLOW_END:
            continue
        reachable.add(key)
        frontier.extend(edges[key])
    finishing = {FLOW_END}
    changed = True
    while changed:
        changed = False
        for key, targets in edges.items():
            if key not in finishing and targets & finishing:
                finishing.add(key)
                changed = True
    problems = []
    for step in definition.steps:
        if step.key not in reachable:
            problems.append(f"Step {step.key!r} can never be reached.")
    trapped = [s.key for s in definition.steps if s.key in reachable and s.key not in finishing]
    if trapped:
        problems.append(f"Steps {', '.join(repr(k) for k in trapped)} loop with no way to finish the flow.")
    return problems


def _texts(flow: Flow, definition: FlowDefinition) -> list[tuple[str, str]]:
    """(where, text) of every plain text the flow may send."""
    texts = [(f"step {s.key!r} prompt", s.prompt) for s in definition.steps if not s.prompt_template]
    texts += [(f"step {s.key!r} error reply", s.error_reply) for s in definition.steps]
    texts += [("retry limit reply", flow.give_up_reply), ("time-out reply", flow.timeout_reply)]
    texts += [("cancel reply", flow.cancel_reply), ("final reply", flow.completion_reply)]
    return [(where, text.strip()) for where, text in texts if text and text.strip()]


def _completion_problems(flow: Flow, definition: FlowDefinition) -> list[str]:
    problems = []
    action = flow.completion_action
    if action == Flow.Action.ENDPOINT:
        if problem := endpoint_url_problem(flow.endpoint_url):
            problems.append(f"The endpoint {problem}.")
        if problem := secret_env_problem(flow.secret_env):
            problems.append(f"The signing secret variable {problem}.")
        if not flow.endpoint_timeout or flow.endpoint_timeout <= 0:
            problems.append("The endpoint time-out must be a positive number of seconds.")
    elif not flow.completion_reply.strip():
        problems.append("The flow needs a final reply.")
    if action == Flow.Action.TASK:
        # The same rule as the `queue` handler's: staff may start only tasks written to be started so.
        if not queue_task_allowed(flow.task_name):
            problems.append(
                f"The task {flow.task_name!r} is not a task flows may start: name one in QUEUE_HANDLER_TASKS "
                f"or one whose name starts with {QUEUED_TASK_PREFIX!r}."
            )
        elif current_app.conf.task_always_eager and flow.task_name not in current_app.tasks:
            # Without a broker the task runs here, so this process must know it.
            problems.append(f"The task {flow.task_name!r} is not a registered task.")
    known = {s.answer_key for s in definition.steps}
    completion_known = known | (set(TICKET_VALUES) if action == Flow.Action.TICKET else set())
    for where, text in _texts(flow, definition):
        allowed = completion_known if where == "final reply" else known
        for key in sorted(set(PLACEHOLDER.findall(text)) - allowed):
            problems.append(f"The {where} uses {{{key}}}, which no step saves.")
    return problems


def _samples(flow: Flow, definition: FlowDefinition) -> dict[str, str]:
    samples = {"reference": SAMPLE_REFERENCE}
    for step in reversed(definition.steps):  # the first step saving a key gives its sample
        spec = INPUT_KINDS.get(step.input_kind)
        samples[step.answer_key] = spec.sample(step) if spec else "1"
    return samples


def _dlt_problems(flow: Flow, definition: FlowDefinition) -> list[str]:
    shortcode = flow.shortcode if flow.shortcode_id else None
    if shortcode is None or not shortcode.requires_dlt:
        return []
    header = shortcode.sender
    samples = _samples(flow, definition)
    problems = []
    texts = _texts(flow, definition)
    if not flow.cancel_reply.strip():
        texts.append(("cancel reply (the shortcode's menu reply)", shortcode.menu_text))
    for where, text in texts:
        sample = text_render(text, samples)
        resolution = template_resolve(header=header, text=sample)
        if not resolution.matched:
            problems.append(
                f"The {where} ({sample!r}) matches no approved DLT template of header {header}: {resolution.why}"
            )
    for step in definition.steps:
        if step.prompt_template and not template_resolve(header=header, text=step_prompt(step, samples)).matched:
            problems.append(f"Step {step.key!r}'s prompt template is not approved for header {header}.")
    return problems


def _template_prompt_problems(flow: Flow, definition: FlowDefinition) -> list[str]:
    samples = _samples(flow, definition)
    problems = []
    for step in definition.steps:
        if step.prompt_template:
            try:
                step_prompt(step, samples)
            except TemplateRenderError as exc:
                problems.append(f"Step {step.key!r}'s prompt template cannot be rendered: {' '.join(exc.messages)}")
    return problems

"""What a flow definition must be to be saved (`flow_problems`), and what each input kind accepts."""

import pytest
from django.core.exceptions import ValidationError

from commands.models import Command
from commands.tests.factories import ShortcodeFactory
from conversations.flows import INPUT_KINDS, InvalidAnswer, StepSpec, answer_parse, flow_problems
from conversations.models import Flow, FlowStep
from conversations.tests.factories import service_shortcode
from conversations.tests.flow_factories import flow_create, recharge_flow, recharge_flow_texts
from templates.tests.factories import dlt_registration


@pytest.fixture
def shortcode(db):
    return ShortcodeFactory(number="57675", dlt_bound=False)


def test_a_sound_flow_has_no_problems(shortcode):
    assert flow_problems(recharge_flow(shortcode)) == []


@pytest.mark.parametrize(
    ("steps", "options", "fields", "problem"),
    [
        ([], [], {}, "A flow needs at least one step."),
        ([{"key": "a", "prompt": ""}], [], {}, "Step 'a' has no prompt."),
        ([{"key": "a", "next_step": "b"}], [], {}, "Step 'a' goes to 'b', which is not a step."),
        (
            [{"key": "a", "input_kind": "choice"}],
            [{"step_key": "a", "value": "1", "next_step": "zz"}],
            {},
            "Step 'a' (option '1') goes to 'zz', which is not a step.",
        ),
        ([{"key": "a", "input_kind": "choice"}], [], {}, "Step 'a' is a choice without options."),
        ([{"key": "a"}], [{"step_key": "a", "value": "1"}], {}, "Step 'a' has options but is not a choice."),
        ([{"key": "a"}], [{"step_key": "b", "value": "1"}], {}, "Option '1' belongs to step 'b', which is not a step"),
        ([{"key": "a", "input_kind": "regex", "pattern": "(["}], [], {}, "Step 'a''s pattern is not a valid"),
        # a loop with no exit: a -> b -> a
        ([{"key": "a"}, {"key": "b", "next_step": "a"}], [], {}, "Steps 'a', 'b' loop with no way to finish"),
        ([{"key": "a", "next_step": "END"}, {"key": "b"}], [], {}, "Step 'b' can never be reached."),
        ([{"key": "a", "prompt": "Hi {nme}"}], [], {}, "The step 'a' prompt uses {nme}, which no step saves."),
        ([{"key": "a"}], [], {"completion_reply": ""}, "The flow needs a final reply."),
        ([{"key": "a"}], [], {"completion_reply": "Ref {reference}"}, "uses {reference}, which no step saves"),
        (
            [{"key": "a"}],
            [],
            {"completion_action": "endpoint", "endpoint_url": "ftp://x", "secret_env": "HANDLER_SECRET_X"},
            "The endpoint must be an http:// or https:// URL.",
        ),
        (
            [{"key": "a"}],
            [],
            {"completion_action": "endpoint", "endpoint_url": "https://x.example", "secret_env": "DJANGO_SECRET_KEY"},
            "The signing secret variable must name an environment variable HANDLER_SECRET_<NAME>",
        ),
        (
            [{"key": "a"}],
            [],
            {"completion_action": "task", "task_name": "delivery.tasks.deliver"},
            "'delivery.tasks.deliver' is not a task flows may start",
        ),
        ([{"key": "a"}], [], {"completion_action": "task", "task_name": "queued.no.such"}, "is not a registered task"),
    ],
)
def test_problems_are_named(shortcode, steps, options, fields, problem):
    flow = flow_create(shortcode, "f", steps=steps, options=options, **fields)
    problems = flow_problems(flow)
    assert any(problem in p for p in problems), problems


def test_a_loop_with_an_exit_is_allowed(shortcode):
    # a: "ok?" yes -> END, no -> a again (asks once more)
    flow = flow_create(
        shortcode,
        "confirm",
        steps=[{"key": "a", "input_kind": "choice"}],
        options=[
            {"step_key": "a", "value": "Y", "next_step": "END"},
            {"step_key": "a", "value": "N", "next_step": "a"},
        ],
    )
    assert flow_problems(flow) == []


def test_a_ticket_flows_final_reply_may_use_the_reference(shortcode):
    flow = flow_create(
        shortcode, "t", steps=[{"key": "issue"}], completion_action="ticket", completion_reply="Ticket {reference}."
    )
    assert flow_problems(flow) == []


@pytest.mark.parametrize("registered", [True, False])
def test_on_a_dlt_bound_shortcode_every_text_must_match_a_template(db, registered):
    # given: a DLT-bound shortcode (its own texts registered), with or without the flow's
    shortcode = service_shortcode(dlt=True)
    if registered:
        dlt_registration(*recharge_flow_texts(), sender_id="SMSGTE")
    flow = recharge_flow(shortcode)
    # when
    problems = flow_problems(flow)
    # then
    if registered:
        assert problems == []
    else:
        assert any(
            p.startswith("The step 'plan' prompt ('Hi Asha, reply 1 for prepaid or 2 for postpaid.')") for p in problems
        )
        assert any("final reply ('Thanks Asha! Your prepaid request is noted.')" in p for p in problems)
        assert all("matches no approved DLT template of header SMSGTE" in p for p in problems)


def test_a_prompt_template_is_rendered_from_the_answers(db):
    shortcode = service_shortcode(dlt=True)
    header = dlt_registration("Hi {#var#}, how many units?", "Thanks.", "Try again.", sender_id="SMSGTE")
    template = header.templates.get(content="Hi {#var#}, how many units?")
    flow = flow_create(
        shortcode,
        "units",
        steps=[
            {"key": "name", "prompt": "Try again.", "error_reply": "Try again."},
            {
                "key": "units",
                "prompt": "",
                "prompt_template": template.dlt_template_id,
                "template_values": "{name}",
                "input_kind": "number",
                "error_reply": "Try again.",
            },
        ],
        completion_reply="Thanks.",
        give_up_reply="Try again.",
        cancel_reply="Thanks.",
    )
    assert flow_problems(flow) == []
    FlowStep.objects.filter(key="units").update(template_values="")
    assert any("prompt template cannot be rendered" in p for p in flow_problems(flow))


def test_every_input_kind_has_a_parser():
    assert set(INPUT_KINDS) == set(FlowStep.InputKind.values)


@pytest.mark.parametrize(
    ("kind", "text", "saved"),
    [
        ("text", "  Asha   Rao ", "Asha Rao"),
        ("number", "1,200", "1200"),
        ("number", "१२.५", "12.5"),
        ("number", "-3", "-3"),
        ("date", "31/01/2026", "2026-01-31"),
        ("date", "2026-01-31", "2026-01-31"),
        ("date", "31-1-26", "2026-01-31"),
        ("yes_no", "Haan", "yes"),
        ("yes_no", "n", "no"),
        ("phone", "98765 43210", "+919876543210"),
        ("phone", "+1 415 555 0100", "+14155550100"),
        ("regex", "ab12345", "ab12345"),
        ("choice", "2", "postpaid"),
        ("choice", "prepaid", "prepaid"),
    ],
)
def test_valid_answers_are_saved_normalised(kind, text, saved):
    assert answer_parse(text, step_of(kind), region="IN") == saved


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("text", "   "),
        ("number", "twelve"),
        ("number", "1.2.3"),
        ("date", "31/02/2026"),
        ("date", "tomorrow"),
        ("yes_no", "maybe"),
        ("phone", "12345"),
        ("regex", "ab123"),
        ("choice", "3"),
    ],
)
def test_invalid_answers_are_refused(kind, text):
    with pytest.raises(InvalidAnswer):
        answer_parse(text, step_of(kind), region="IN")


def step_of(kind: str) -> StepSpec:
    from conversations.flows import OptionSpec

    options = (OptionSpec("1", "prepaid"), OptionSpec("2", "postpaid")) if kind == "choice" else ()
    return StepSpec(key="s", answer_key="s", input_kind=kind, pattern=r"[a-z]{2}\d{5}", options=options)


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({}, 'The flow handler\'s options name the flow: {"flow": "<slug>"}.'),
        ({"flow": "nope"}, "There is no flow 'nope'."),
        ({"flow": True}, 'The flow handler\'s options name the flow: {"flow": "<slug>"}.'),
    ],
)
def test_a_command_must_name_an_existing_flow(shortcode, config, error):
    command = Command(shortcode=shortcode, code="5", name="Recharge", handler_key="flow", config=config)
    with pytest.raises(ValidationError) as raised:
        command.full_clean()
    assert raised.value.message_dict["config"] == [error]


def test_a_command_naming_a_flow_is_valid(shortcode):
    recharge_flow(shortcode)
    Command(
        shortcode=shortcode, code="5", name="Recharge", handler_key="flow", config={"flow": "recharge"}
    ).full_clean()
    flow_id = Flow.objects.get().id
    Command(shortcode=shortcode, code="6", name="Recharge", handler_key="flow", config={"flow": flow_id}).full_clean()

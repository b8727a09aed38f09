"""
Flows for tests, built the way staff build them in the admin: a flow, its ordered steps,
and the options of its choice steps.

`recharge_flow` is the three-step flow with a branch most tests use:

    name (text) -> plan (choice: 1 prepaid -> amount, 2 postpaid -> due)
    amount (number) -> END          due (date) -> END
"""

import uuid

from celery import shared_task
from django.core.cache import cache

from commands.models import Shortcode
from conversations.handling import inbound_handle
from conversations.models import Flow, FlowStep, FlowStepOption
from conversations.receiving import message_receive
from delivery.models import Message
from delivery.providers.base import InboundSMS

PHONE = "+919876543210"

ASK_NAME = "Welcome! Please reply with your name."
ASK_PLAN = "Hi {name}, reply 1 for prepaid or 2 for postpaid."
ASK_AMOUNT = "How much do you want to recharge, in Rs?"
ASK_DUE = "On which date is your bill due (DD/MM/YYYY)?"
NOT_A_PLAN = "Please reply 1 or 2."
NOT_A_NUMBER = "Please reply with a number, like 199."
NOT_A_DATE = "Please reply with a date, like 31/01/2026."
NOT_A_NAME = "Please reply with your name."
DONE = "Thanks {name}! Your {plan} request is noted."
GAVE_UP = "Too many invalid answers. Please start again."
TIMED_OUT = "Your session timed out. Send 5 to start again."
CANCELLED = "Cancelled. Reply with a code from the menu."


def flow_create(shortcode: Shortcode, slug: str, steps: list[dict], options: list[dict] = (), **fields) -> Flow:
    """A flow with `steps` (FlowStep fields, in order) and `options` (FlowStepOption fields)."""
    fields.setdefault("name", slug.title())
    fields.setdefault("completion_reply", "Done.")
    flow = Flow.objects.create(shortcode=shortcode, slug=slug, **fields)
    for position, step in enumerate(steps):
        step = {"answer_key": step["key"], "prompt": f"Your {step['key']}?", **step}
        FlowStep.objects.create(flow=flow, position=position, **step)
    for position, option in enumerate(options):
        FlowStepOption.objects.create(flow=flow, position=position, **option)
    return flow


def recharge_flow(shortcode: Shortcode, **fields) -> Flow:
    fields.setdefault("completion_reply", DONE)
    fields.setdefault("timeout_reply", TIMED_OUT)
    fields.setdefault("cancel_reply", CANCELLED)
    return flow_create(
        shortcode,
        "recharge",
        steps=[
            {"key": "name", "prompt": ASK_NAME, "error_reply": NOT_A_NAME},
            {"key": "plan", "prompt": ASK_PLAN, "input_kind": "choice", "error_reply": NOT_A_PLAN},
            {
                "key": "amount",
                "prompt": ASK_AMOUNT,
                "input_kind": "number",
                "error_reply": NOT_A_NUMBER,
                "next_step": "END",
            },
            {"key": "due", "prompt": ASK_DUE, "input_kind": "date", "error_reply": NOT_A_DATE, "retry_limit": 1},
        ],
        options=[
            {"step_key": "plan", "value": "1", "label": "prepaid", "next_step": "amount"},
            {"step_key": "plan", "value": "2", "label": "postpaid", "next_step": "due"},
        ],
        **{"name": "Recharge", **fields},
    )


def recharge_flow_texts() -> list[str]:
    """The recharge flow's texts as DLT templates (each answer one variable)."""
    return [
        ASK_NAME,
        "Hi {#var#}, reply 1 for prepaid or 2 for postpaid.",
        ASK_AMOUNT,
        ASK_DUE,
        NOT_A_PLAN,
        NOT_A_NUMBER,
        NOT_A_DATE,
        NOT_A_NAME,
        "Thanks {#var#}! Your {#var#} request is noted.",
        GAVE_UP,
        TIMED_OUT,
        CANCELLED,
    ]


def sms(text: str, phone: str = PHONE, shortcode: str = "57675") -> str:
    """Receive and handle one SMS; the reply text ('' for none)."""
    inbound, _ = message_receive(
        provider="generic",
        sms=InboundSMS(sender=phone, recipient=shortcode, body=text, provider_message_id=f"flow-{uuid.uuid4().hex}"),
    )
    inbound_handle(message_id=inbound.id)
    reply = Message.objects.filter(in_reply_to=inbound).first()
    return reply.body if reply else ""


@shared_task(name="queued.tests.flow_task_record")
def flow_task_record(payload: dict) -> None:
    """The task a flow's completion queues in tests: it keeps what it was given where the test can read it."""
    cache.set("flow-task-payload", payload)

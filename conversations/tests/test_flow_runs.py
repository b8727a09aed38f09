"""Flows built in the admin, as a subscriber lives them: one SMS in, the reply they get, what is stored."""

import pytest
from django.core.cache import cache
from freezegun import freeze_time

from commands.handlers import HANDLERS, HandlerContext
from commands.tests.factories import CommandFactory
from conftest import wait_until
from conversations.models import Contact, Flow, SupportTicket
from conversations.sessions import session_get
from conversations.tests.factories import service_shortcode
from conversations.tests.flow_factories import (
    ASK_AMOUNT,
    ASK_DUE,
    ASK_NAME,
    CANCELLED,
    GAVE_UP,
    NOT_A_DATE,
    NOT_A_NUMBER,
    NOT_A_PLAN,
    PHONE,
    TIMED_OUT,
    flow_create,
    recharge_flow,
    recharge_flow_texts,
    sms,
)
from delivery.models import Message, Suppression
from delivery.statuses import Direction
from templates.tests.factories import dlt_registration

UNAVAILABLE = "Sorry, this service is unavailable right now. Please try again later."


@pytest.fixture
def shortcode(db):
    shortcode = service_shortcode()
    flow = recharge_flow(shortcode)
    CommandFactory(shortcode=shortcode, code="5", name="Recharge", handler_key="flow", config={"flow": flow.slug})
    return shortcode


def waiting_step() -> str | None:
    session = session_get(shortcode="57675", phone=PHONE)
    return session.step if session else None


@pytest.mark.parametrize(
    ("plan", "question", "answer", "saved"),
    [
        ("1", ASK_AMOUNT, "199", "prepaid"),
        ("2", ASK_DUE, "31/01/2026", "postpaid"),
        ("PREPAID", ASK_AMOUNT, "१९९", "prepaid"),  # the option's label, and digits in Devanagari
    ],
)
def test_a_three_step_flow_branches_on_the_choice(shortcode, plan, question, answer, saved):
    # when: the command starts the flow
    assert sms("5") == ASK_NAME
    assert waiting_step() == "name"
    # when: the name, then the plan
    assert sms("Asha") == "Hi Asha, reply 1 for prepaid or 2 for postpaid."
    assert sms(plan) == question
    # then: the branch's own question is waiting
    assert waiting_step() == ("amount" if saved == "prepaid" else "due")
    # when: its answer
    assert sms(answer) == f"Thanks Asha! Your {saved} request is noted."
    # then: the run is over; the next SMS is read as a code
    assert waiting_step() is None
    assert sms("Asha").startswith("Sorry, we did not understand")


def test_text_after_the_code_answers_the_first_step(shortcode):
    assert sms("5  Ravi   Kumar") == "Hi Ravi Kumar, reply 1 for prepaid or 2 for postpaid."
    assert waiting_step() == "plan"


@pytest.mark.parametrize(
    ("given", "invalid", "error", "valid", "then"),
    [
        (["Asha"], "3", NOT_A_PLAN, "2", ASK_DUE),
        (["Asha", "1"], "a lot", NOT_A_NUMBER, "150", "Thanks Asha! Your prepaid request is noted."),
        (["Asha", "2"], "31/02/2026", NOT_A_DATE, "28/02/2026", "Thanks Asha! Your postpaid request is noted."),
    ],
)
def test_an_invalid_answer_gets_the_error_reply_then_a_valid_one_goes_on(shortcode, given, invalid, error, valid, then):
    # given
    for text in ["5", *given]:
        sms(text)
    waiting = waiting_step()
    # when
    reply = sms(invalid)
    # then: the same step waits, one try used
    assert reply == error
    session = session_get(shortcode="57675", phone=PHONE)
    assert (session.step, session.state["retries"]) == (waiting, 1)
    # when: a valid answer
    assert sms(valid) == then


def test_the_retry_limit_ends_the_flow(shortcode):
    # given: the due-date step allows one retry
    for text in ("5", "Asha", "2"):
        sms(text)
    # when
    first, second = sms("tomorrow"), sms("next week")
    # then: one error reply, then the flow gives up and forgets the run
    assert (first, second) == (NOT_A_DATE, GAVE_UP)
    assert waiting_step() is None
    assert sms("28/02/2026").startswith("Sorry, we did not understand")


@pytest.mark.parametrize(("later", "reply"), [(299, ASK_AMOUNT), (300, TIMED_OUT), (86_000, TIMED_OUT)])
def test_after_the_time_out_the_next_message_gets_the_time_out_reply(shortcode, later, reply):
    # given: a run waiting at the plan, with the flow's five-minute time-out
    with freeze_time() as clock:
        sms("5")
        sms("Asha")
        # when: the answer comes `later` seconds on
        clock.tick(later)
        answer = sms("1")
        # then: within the time-out it is taken; after it, the time-out reply, and the run is gone
        assert answer == reply
        if reply == TIMED_OUT:
            assert waiting_step() is None
            # the message after that is read afresh
            assert sms("5") == ASK_NAME


def test_a_time_out_without_a_reply_reads_the_next_message_afresh(shortcode):
    Flow.objects.filter(slug="recharge").update(timeout_reply="")
    with freeze_time() as clock:
        sms("5")
        clock.tick(301)
        assert sms("2") == "Your balance is Rs 120.00."


@pytest.mark.parametrize("word", ["0", "menu", " Menu "])
def test_a_cancel_keyword_ends_the_flow_mid_way(shortcode, word):
    sms("5")
    sms("Asha")
    assert sms(word) == CANCELLED
    assert waiting_step() is None
    assert sms("1") == ASK_NAME  # code 1, a command again


def test_cancel_without_its_own_reply_answers_the_menu(shortcode):
    Flow.objects.filter(slug="recharge").update(cancel_reply="")
    sms("5")
    assert sms("0") == shortcode.menu_text


@pytest.mark.parametrize("word", ["STOP", "stop", "CANCEL", "UNSUBSCRIBE"])
def test_opt_out_words_win_over_an_active_flow(shortcode, word):
    # given: a run waiting for the plan
    sms("5")
    sms("Asha")
    # when
    reply = sms(word)
    # then: unsubscribed, not cancelled; the run is over and no time-out reply follows later
    assert reply == shortcode.opt_out_reply
    assert Suppression.objects.filter(phone=PHONE).exists()
    assert waiting_step() is None
    assert sms("START") == shortcode.opt_in_reply
    with freeze_time() as clock:
        clock.tick(3600)
        assert sms("1") == ASK_NAME


def test_completion_can_save_the_answers_to_the_contact(shortcode):
    Flow.objects.filter(slug="recharge").update(completion_action=Flow.Action.CONTACT)
    for text in ("5", "Asha Rao", "1", "199"):
        reply = sms(text)
    assert reply == "Thanks Asha Rao! Your prepaid request is noted."
    contact = Contact.objects.get(phone=PHONE)
    assert (contact.name, contact.registered_at is not None) == ("Asha Rao", True)
    assert contact.attributes == {"name": "Asha Rao", "plan": "prepaid", "amount": "199"}


def test_completion_can_open_a_ticket_from_the_message(shortcode):
    # given: a one-step support flow that opens a ticket
    flow_create(
        shortcode,
        "helpdesk",
        steps=[{"key": "issue", "prompt": "Please describe your issue in one SMS."}],
        completion_action=Flow.Action.TICKET,
        completion_reply="Ticket {reference} opened. Our team will call you back.",
    )
    CommandFactory(shortcode=shortcode, code="6", name="Helpdesk", handler_key="flow", config={"flow": "helpdesk"})
    # when
    assert sms("6") == "Please describe your issue in one SMS."
    reply = sms("My SIM is blocked")
    # then: the ticket names the inbound SMS its answer came in
    ticket = SupportTicket.objects.get()
    inbound = Message.objects.filter(direction=Direction.INBOUND, body="My SIM is blocked").get()
    assert reply == f"Ticket {ticket.reference} opened. Our team will call you back."
    assert (ticket.issue, ticket.phone, ticket.status, ticket.message_id) == (
        "My SIM is blocked",
        PHONE,
        "open",
        inbound.id,
    )


def test_completion_can_queue_a_named_task(shortcode):
    # given: the flow queues the recording task (tasks run in-process on the embedded default)
    Flow.objects.filter(slug="recharge").update(
        completion_action=Flow.Action.TASK, task_name="queued.tests.flow_task_record"
    )
    # when
    for text in ("5", "Asha", "2", "28/02/2026"):
        reply = sms(text)
    # then
    assert reply == "Thanks Asha! Your postpaid request is noted."
    inbound = Message.objects.filter(direction=Direction.INBOUND, body="28/02/2026").get()
    assert cache.get("flow-task-payload") == {
        "flow": "recharge",
        "phone": PHONE,
        "shortcode": "57675",
        "answers": {"name": "Asha", "plan": "postpaid", "due": "2026-02-28"},
        "message_id": inbound.id,
    }


def test_a_flow_on_a_dlt_bound_shortcode_sends_every_text_through_its_template(db):
    # given: the flow's texts registered under the shortcode's header
    shortcode = service_shortcode(dlt=True)
    dlt_registration(*recharge_flow_texts(), sender_id="SMSGTE")
    recharge_flow(shortcode)
    CommandFactory(shortcode=shortcode, code="5", name="Recharge", handler_key="flow", config={"flow": "recharge"})
    # when
    for text in ("5", "Asha", "x", "1", "199"):
        sms(text)
    # then: every reply is queued with its DLT template, none refused
    replies = Message.objects.filter(direction=Direction.OUTBOUND)
    assert replies.count() == 5
    assert not replies.exclude(status="queued").exists()
    assert not replies.filter(dlt_template_id="").exists()


def test_a_command_naming_a_missing_or_inactive_flow_apologises(shortcode):
    Flow.objects.filter(slug="recharge").update(active=False)
    assert sms("5") == UNAVAILABLE
    assert waiting_step() is None


def test_a_flow_switched_off_mid_run_ends_it(shortcode):
    sms("5")
    Flow.objects.filter(slug="recharge").update(active=False)
    assert sms("Asha") == UNAVAILABLE
    assert waiting_step() is None


# The catch-all ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["hello there", "9", "what is my bill"])
def test_without_a_catch_all_free_text_gets_the_unknown_reply(shortcode, text):
    assert sms(text) == shortcode.unknown_text


def test_a_catch_all_auto_reply_answers_free_text(shortcode):
    shortcode.catch_all_handler = "reply"
    shortcode.catch_all_config = {"text": "Thanks, we read every message."}
    shortcode.save()
    assert sms("hello there") == "Thanks, we read every message."
    # codes still go to their commands, and an empty message to the menu
    assert sms("2") == "Your balance is Rs 120.00."
    assert sms("") == shortcode.menu_text


def test_a_catch_all_flow_starts_on_free_text(shortcode):
    shortcode.catch_all_handler = "flow"
    shortcode.catch_all_config = {"flow": "recharge"}
    shortcode.save()
    assert sms("I want to recharge") == ASK_NAME
    assert sms("Asha") == "Hi Asha, reply 1 for prepaid or 2 for postpaid."


def test_a_catch_all_naming_an_unknown_handler_apologises(shortcode, caplog):
    shortcode.catch_all_handler = "nonexistent"
    shortcode.save()
    assert sms("hello") == UNAVAILABLE
    assert "catch-all names unknown handler 'nonexistent'" in caplog.text


# On the real services ---------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_flow_runs_on_a_celery_worker_with_its_session_in_redis(celery_worker, post_webhook):
    # given: the recharge flow behind code 5
    shortcode = service_shortcode()
    recharge_flow(shortcode)
    CommandFactory(shortcode=shortcode, code="5", name="Recharge", handler_key="flow", config={"flow": "recharge"})
    replies = []
    # when: the subscriber's SMS arrive one by one through the webhook, the worker answering each
    for number, text in enumerate(["5", "Asha", "3", "2", "28/02/2026"]):
        sms_body = {"from": PHONE, "to": "57675", "body": text, "id": f"fl-{number}"}
        assert post_webhook("/webhooks/generic/inbound/", sms_body).status_code == 200
        inbound = Message.objects.get(direction=Direction.INBOUND, provider_message_id=f"fl-{number}")
        answered = Message.objects.filter(in_reply_to=inbound)
        wait_until(answered.exists, what=f"the reply to {text!r}")
        replies.append(answered.get().body)
    # then
    assert replies == [
        ASK_NAME,
        "Hi Asha, reply 1 for prepaid or 2 for postpaid.",
        NOT_A_PLAN,
        ASK_DUE,
        "Thanks Asha! Your postpaid request is noted.",
    ]
    assert waiting_step() is None


def test_the_registered_flow_handler_answers_the_first_turn(shortcode):
    # Any caller of the handler registry (not only the conversation) gets the first turn and its state.
    flow = Flow.objects.get(slug="recharge")
    context = HandlerContext(shortcode="57675", phone=PHONE, code="5", args="", config={"flow": "recharge"})
    result = HANDLERS["flow"].func(context)
    assert (result.reply, result.next_step) == (ASK_NAME, "name")
    assert result.state == {"flow": flow.id, "answers": {}, "retries": 0}

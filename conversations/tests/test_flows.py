"""Conversations as a subscriber lives them: one SMS in, the reply they get, what is stored."""

import uuid

import pytest
from freezegun import freeze_time

from conversations import contacts
from conversations.handling import inbound_handle
from conversations.models import Contact
from conversations.receiving import message_receive
from conversations.sessions import session_get
from conversations.tests.factories import ASK_NAME, PHONE, registered, service_shortcode
from delivery.models import Message
from delivery.providers.base import InboundSMS
from delivery.statuses import Direction


@pytest.fixture
def shortcode(db):
    return service_shortcode()


def sms(text: str, phone: str = PHONE) -> str:
    """Receive and handle one SMS to shortcode 57675; the reply text ('' for none)."""
    # Each call is a new SMS, so it carries its own provider id (an id-less repeat would be a replay).
    sms_id = f"flow-{uuid.uuid4().hex}"
    inbound, _ = message_receive(
        provider="generic", sms=InboundSMS(sender=phone, recipient="57675", body=text, provider_message_id=sms_id)
    )
    inbound_handle(message_id=inbound.id)
    reply = Message.objects.filter(in_reply_to=inbound).first()
    return reply.body if reply else ""


def test_a_flow_asks_then_takes_the_next_sms_as_the_answer(shortcode):
    # when
    prompt = sms("1")
    # then
    assert prompt == ASK_NAME
    assert session_get(shortcode="57675", phone=PHONE).step == "answer"
    # when
    done = sms("Asha")
    # then: answered, and the flow is over
    assert done == registered("Asha")
    assert session_get(shortcode="57675", phone=PHONE) is None
    assert sms("Asha").startswith("Sorry, we did not understand")


def test_a_flow_answered_in_one_message(shortcode):
    assert sms("REG  Ravi   Kumar") == registered("Ravi Kumar")


@pytest.mark.parametrize(("later", "answered"), [(59, True), (60, False), (3600, False)])
def test_session_expiry_starts_fresh(shortcode, later, answered):
    # given: a flow waiting for the name, with a one-minute time-out
    shortcode.session_ttl = 60
    shortcode.save()
    with freeze_time() as clock:
        assert sms("1") == ASK_NAME
        # when: the subscriber answers `later` seconds on (the cache's clock may not move: Redis keeps real time)
        clock.tick(later)
        reply = sms("Asha")
    # then: within the time-out it is the name; after it, "Asha" is read as an (unknown) code
    if answered:
        assert reply == registered("Asha")
    else:
        assert reply.startswith("Sorry, we did not understand")


def test_sessions_are_per_phone(shortcode):
    assert sms("1", phone="+919876543210") == ASK_NAME
    assert sms("Asha", phone="+919812345678").startswith("Sorry")
    assert sms("Asha", phone="+919876543210") == registered("Asha")


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_message_gets_the_menu(shortcode, text):
    assert sms(text) == shortcode.menu_text


@pytest.mark.parametrize("text", ["9", "hello", "😀", "1234567890" * 20])
def test_unknown_input_gets_the_unknown_reply(shortcode, text):
    assert sms(text) == "Sorry, we did not understand that. Reply with a code from the menu."


def test_unknown_shortcode_is_stored_but_not_answered(shortcode):
    inbound, _ = message_receive(
        provider="generic", sms=InboundSMS(sender=PHONE, recipient="11111", body="1", provider_message_id=None)
    )
    assert inbound_handle(message_id=inbound.id) is None
    inbound.refresh_from_db()
    assert inbound.status == "handled"
    assert not Message.objects.filter(direction=Direction.OUTBOUND).exists()


def test_a_crashing_handler_gets_a_polite_reply_and_ends_the_flow(shortcode, caplog):
    from commands.handlers import HANDLERS, HandlerResult, handler
    from commands.models import Command

    @handler("test_crash")
    def crash(ctx):
        if ctx.step:
            raise RuntimeError("boom")
        return HandlerResult(reply="first step", next_step="two")

    try:
        Command.objects.filter(code="2").update(handler_key="test_crash")
        assert sms("2") == "first step"
        assert sms("anything") == "Sorry, this service is unavailable right now. Please try again later."
        assert session_get(shortcode="57675", phone=PHONE) is None
        assert "handler 'test_crash' failed" in caplog.text
    finally:
        HANDLERS.pop("test_crash")


def test_inbound_handled_twice_gives_one_reply(shortcode):
    inbound, _ = message_receive(
        provider="generic", sms=InboundSMS(sender=PHONE, recipient="57675", body="2", provider_message_id="x1")
    )
    inbound_handle(message_id=inbound.id)
    inbound_handle(message_id=inbound.id)
    assert Message.objects.filter(in_reply_to=inbound).count() == 1


def test_each_handled_sms_records_the_command_that_answered_it(shortcode):
    # when: a code by its alias, a two-step command's question and answer, then no command
    for text in ("BAL", "1", "Asha", "hello", ""):
        sms(text)

    # then
    inbound = Message.objects.filter(direction=Direction.INBOUND).order_by("id")
    assert [(m.body, m.command) for m in inbound] == [
        ("BAL", "2"),
        ("1", "1"),
        ("Asha", "1"),
        ("hello", ""),
        ("", ""),
    ]


@pytest.mark.parametrize("seconds_later,inserts", [(60, 0), (599, 0), (601, 1)])
def test_a_subscriber_seen_lately_is_not_written_again(
    db, django_capture_on_commit_callbacks, django_assert_num_queries, seconds_later, inserts
):
    # given: a subscriber's first SMS remembered them
    contacts._touched.clear()
    with freeze_time() as clock:
        with django_capture_on_commit_callbacks(execute=True):
            contacts.contacts_touch(phones=[PHONE])
        # when: their next SMS, a while later
        clock.tick(seconds_later)
        with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(inserts):
            contacts.contacts_touch(phones=[PHONE])
    # then: one row, written again only once the memory has lapsed
    assert Contact.objects.filter(phone=PHONE).count() == 1
    contacts._touched.clear()

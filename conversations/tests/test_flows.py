"""Conversations as a subscriber lives them: one SMS in, the reply they get, what is stored."""

import time
import uuid

import pytest
from django.core.management import call_command

from conversations.models import Contact, SupportTicket
from conversations.services import inbound_handle, message_receive
from conversations.sessions import session_get
from delivery.models import Message
from delivery.providers.base import InboundSMS

PHONE = "+919876543210"


@pytest.fixture
def demo(db):
    call_command("seed_demo", verbosity=0)


def sms(text: str, phone: str = PHONE) -> str:
    """Receive and handle one SMS to the demo shortcode; the reply text ('' for none)."""
    # Each call is a new SMS, so it carries its own provider id (an id-less repeat would be a replay).
    sms_id = f"flow-{uuid.uuid4().hex}"
    inbound, _ = message_receive(
        provider="generic", sms=InboundSMS(sender=phone, recipient="57675", body=text, provider_message_id=sms_id)
    )
    inbound_handle(message_id=inbound.id)
    reply = Message.objects.filter(in_reply_to=inbound).first()
    return reply.body if reply else ""


def test_register_asks_a_name_then_stores_the_contact(demo):
    # when
    prompt = sms("1")
    # then
    assert prompt == "Welcome! Please reply with your name."
    assert session_get(shortcode="57675", phone=PHONE).step == "name"
    # when
    done = sms("Asha")
    # then
    assert done == "Thank you Asha, you are registered."
    contact = Contact.objects.get(phone=PHONE)
    assert contact.name == "Asha"
    assert contact.registered_at is not None
    assert session_get(shortcode="57675", phone=PHONE) is None
    assert sms("2") == "Hi Asha, your balance is Rs 0.00."


def test_register_in_one_message(demo):
    assert sms("REG  Ravi   Kumar") == "Thank you Ravi Kumar, you are registered."


def test_session_expiry_starts_fresh(demo):
    # given: a short time-out
    from commands.models import Shortcode

    Shortcode.objects.filter(number="57675").update(session_ttl=1)
    assert sms("1") == "Welcome! Please reply with your name."
    # when: the subscriber answers after the session expired
    time.sleep(1.3)
    reply = sms("Asha")
    # then: "Asha" is read as a (unknown) code, not as the name
    assert reply.startswith("Sorry, we did not understand")
    assert not Contact.objects.filter(phone=PHONE, registered_at__isnull=False).exists()


def test_sessions_are_per_phone(demo):
    assert sms("1", phone="+919876543210") == "Welcome! Please reply with your name."
    assert sms("Asha", phone="+919812345678").startswith("Sorry")
    assert sms("Asha", phone="+919876543210") == "Thank you Asha, you are registered."


def test_support_opens_a_ticket_and_replies_its_reference(demo):
    assert sms("3") == "Please describe your issue in one SMS."
    reply = sms("My SIM is blocked since Monday")
    ticket = SupportTicket.objects.get()
    assert reply == f"Ticket {ticket.reference} opened. Our team will call you back."
    assert (ticket.phone, ticket.issue, ticket.status) == (PHONE, "My SIM is blocked since Monday", "open")


def test_balance_for_an_unregistered_number(demo):
    assert sms("bal") == "You are not registered yet. Send 1 to register."


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_message_gets_the_menu(demo, text):
    assert sms(text).startswith("Reply with a code:")


@pytest.mark.parametrize("text", ["9", "hello", "😀", "1234567890" * 20])
def test_unknown_input_gets_the_unknown_reply(demo, text):
    assert sms(text) == "Sorry, we did not understand that. Reply with a code from the menu."


def test_unknown_shortcode_is_stored_but_not_answered(demo):
    inbound, _ = message_receive(
        provider="generic", sms=InboundSMS(sender=PHONE, recipient="11111", body="1", provider_message_id=None)
    )
    assert inbound_handle(message_id=inbound.id) is None
    inbound.refresh_from_db()
    assert inbound.status == "handled"
    assert not Message.objects.filter(direction="out").exists()


def test_a_crashing_handler_gets_a_polite_reply_and_ends_the_flow(demo, caplog):
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


def test_inbound_handled_twice_gives_one_reply(demo):
    inbound, _ = message_receive(
        provider="generic", sms=InboundSMS(sender=PHONE, recipient="57675", body="2", provider_message_id="x1")
    )
    inbound_handle(message_id=inbound.id)
    inbound_handle(message_id=inbound.id)
    assert Message.objects.filter(in_reply_to=inbound).count() == 1

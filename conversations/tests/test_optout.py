"""Opt-out, opt-in and help words, and the rate limit, as a subscriber sees them."""

import pytest

from commands.models import Shortcode
from conversations.tests.factories import BALANCE, PHONE, service_shortcode
from conversations.tests.test_flows import sms
from delivery.deliver import message_deliver
from delivery.models import Message, Suppression
from delivery.outbound import message_send
from delivery.statuses import Direction
from templates.models import Template


@pytest.fixture
def shortcode(db):
    """Shortcode 57675, DLT-bound: each of its texts is an approved template."""
    return service_shortcode(dlt=True)


@pytest.mark.parametrize("word", ["STOP", "stop", " Stop ", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"])
def test_opt_out_words_suppress_the_number_and_confirm_once(shortcode, word):
    # when
    reply = sms(word)
    # then: one confirmation goes out
    assert reply.startswith("You have been unsubscribed")
    confirmation = Message.objects.get(direction=Direction.OUTBOUND)
    assert confirmation.status == "queued"
    suppression = Suppression.objects.get(phone=PHONE)
    assert suppression.keyword == word.strip().upper()
    assert suppression.shortcode == ("" if word.strip().upper() == "STOPALL" else "57675")
    # and nothing else is sent
    refused = message_send(shortcode="57675", phone=PHONE, body="Offer", provider="console")
    assert (refused.status, refused.error_code) == ("refused", "opted_out")


def test_everything_after_stop_is_refused_not_sent(shortcode):
    sms("STOP")
    sms("2")
    replies = Message.objects.filter(direction=Direction.OUTBOUND).order_by("id")
    assert [(m.status, m.error_code) for m in replies] == [("queued", ""), ("refused", "opted_out")]


def test_stop_please_is_not_an_opt_out(shortcode):
    assert sms("stop please").startswith("Sorry")
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("word", ["START", "yes", "UNSTOP"])
def test_opt_in_words_lift_the_suppression(shortcode, word):
    sms("STOPALL")
    assert sms(word) == "You are subscribed again. Reply HELP for help."
    assert not Suppression.objects.exists()
    assert sms("2") == BALANCE


@pytest.mark.parametrize("word", ["HELP", "info"])
def test_help_words_answer_the_help_text(shortcode, word):
    assert sms(word) == Shortcode.objects.get(number="57675").help_text


@pytest.mark.parametrize("word", ["HELP", "info"])
def test_help_is_answered_even_after_stop(shortcode, word):
    # given
    sms("STOP")
    # when
    reply = sms(word)
    # then: the help text is queued for sending, with its DLT template
    assert reply == Shortcode.objects.get(number="57675").help_text
    answer = Message.objects.filter(direction=Direction.OUTBOUND).latest("id")
    help_template = Template.objects.get(content=shortcode.help_text)
    assert (answer.status, answer.error_code, answer.dlt_template_id) == ("queued", "", help_template.dlt_template_id)
    assert message_deliver(message_id=answer.id) == "sent"
    # and anything else is still refused
    sms("1")
    refused = Message.objects.filter(direction=Direction.OUTBOUND).latest("id")
    assert (refused.status, refused.error_code) == ("refused", "opted_out")


def test_help_after_stop_still_needs_a_dlt_template(shortcode):
    # given: a help text never registered on the DLT platform
    Shortcode.objects.filter(number="57675").update(help_text="Call us any time.")
    sms("STOP")
    # when
    sms("HELP")
    # then
    answer = Message.objects.filter(direction=Direction.OUTBOUND).latest("id")
    assert (answer.status, answer.error_code) == ("refused", "dlt_no_template")


def test_shortcode_own_opt_out_words(shortcode):
    Shortcode.objects.filter(number="57675").update(opt_out_keywords="BAND KARO, ruko")
    assert sms("band karo").startswith("You have been unsubscribed")
    assert Suppression.objects.get().keyword == "BAND KARO"


def test_stop_ends_an_open_flow(shortcode):
    from conversations.sessions import session_get

    sms("1")
    sms("STOP")
    assert session_get(shortcode="57675", phone=PHONE) is None


def test_stop_on_one_shortcode_leaves_others_alone(shortcode):
    sms("STOP")
    other = message_send(shortcode="99999", phone=PHONE, body="hi", provider="console")
    assert other.status == "queued"


def test_a_burst_over_the_rate_limit_is_stored_and_not_answered(shortcode):
    # given
    Shortcode.objects.filter(number="57675").update(inbound_limit_per_minute=3)
    # when
    replies = [sms("2") for _ in range(5)]
    # then
    assert [bool(r) for r in replies] == [True, True, True, False, False]
    statuses = list(Message.objects.filter(direction=Direction.INBOUND).order_by("id").values_list("status", flat=True))
    assert statuses == ["handled", "handled", "handled", "rate_limited", "rate_limited"]
    # another sender is not limited
    assert sms("2", phone="+919812345678")

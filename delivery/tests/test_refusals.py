"""
Sends we refuse are never sent: not at send time, not when re-queued; and a number the
carrier says opted out is suppressed here too.
"""

import json

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from commands.models import Shortcode
from conftest import FakeResponse, load_fixture
from conversations.tests.factories import PHONE, service_shortcode
from conversations.tests.test_flows import sms
from delivery.deliver import message_deliver
from delivery.models import Message, Suppression
from delivery.outbound import message_send, messages_requeue
from delivery.providers import get_provider
from delivery.providers.base import VOUCHED_WHOLE_REQUEST, Verified, webhook_request_from
from delivery.reports import delivery_report_record
from delivery.send_options import SendOptions
from delivery.statuses import Direction, Status
from delivery.suppression import suppression_add
from delivery.tests.factories import OutboundMessageFactory
from templates.models import Template


@pytest.fixture
def gateway(db, provider_server, settings):
    """Shortcode 57675 (DLT-bound, header SMSGTE) sending through a local generic gateway."""
    settings.GATEWAY_OUTBOUND_URL = f"{provider_server.url}/send"
    service_shortcode(dlt=True, provider="generic")
    return provider_server


def send(body: str = "Hello", **kwargs) -> Message:
    return message_send(shortcode="57675", phone=PHONE, body=body, provider="generic", **kwargs)


# Send-time checks --------------------------------------------------------------------------


def test_a_number_that_opts_out_after_queuing_is_refused_at_send_time(gateway):
    # given: queued while the number was still subscribed
    message = send()
    assert message.status == "queued"
    suppression_add(phone=PHONE, shortcode="57675", keyword="STOP")

    # when
    outcome = message_deliver(message_id=message.id)

    # then
    message.refresh_from_db()
    assert outcome == "refused"
    assert (message.status, message.error_code) == ("refused", "opted_out")
    assert "opted out (STOP)" in message.error_message
    assert gateway.requests == []


def test_an_all_shortcodes_opt_out_after_queuing_is_refused_too(gateway):
    message = send()
    suppression_add(phone=PHONE, shortcode="", keyword="STOPALL")
    assert message_deliver(message_id=message.id) == "refused"
    assert gateway.requests == []


def test_the_opt_out_confirmation_still_goes_out_once(gateway):
    # when
    sms("STOP")
    confirmation = Message.objects.get(direction=Direction.OUTBOUND)

    # then: it reaches the gateway, with its DLT template, although the number is now suppressed
    assert message_deliver(message_id=confirmation.id) == "sent"
    opt_out_reply = Shortcode.objects.get().opt_out_reply
    assert [r.json()["message"] for r in gateway.requests] == [opt_out_reply]
    confirmation.refresh_from_db()
    assert confirmation.dlt_template_id == Template.objects.get(content=opt_out_reply).dlt_template_id
    # and the next reply is refused before it is stored as queued
    sms("2")
    assert Message.objects.filter(direction=Direction.OUTBOUND).latest("id").status == "refused"


def test_a_shortcode_config_cannot_switch_the_send_time_checks_off(gateway):
    # given: a staff-editable config that tries to carry the rules itself
    suppression_add(phone=PHONE, shortcode="57675", keyword="STOP")
    config = {"send_rules": {"ignore_suppression": True, "dlt_header": None}}
    message = send(options=SendOptions(provider_config=config))

    # then
    assert (message.status, message.error_code) == ("refused", "opted_out")
    assert gateway.requests == []


# Re-queue ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,error_code",
    [("refused", "opted_out"), ("refused", "dlt_no_template"), ("failed", "dlt_no_template")],
    ids=["refused-opted-out", "refused-dlt", "failed-dlt-stored-before-refusals"],
)
def test_a_refusal_is_never_queued_again(gateway, status, error_code):
    # given
    refused = OutboundMessageFactory(phone=PHONE, status=status, error_code=error_code)

    # when
    requeued = messages_requeue(message_ids=[refused.id])

    # then
    refused.refresh_from_db()
    assert requeued == 0
    assert (refused.status, refused.error_code) == (status, error_code)
    assert message_deliver(message_id=refused.id) == "skipped"
    assert gateway.requests == []


def test_a_dlt_refused_reply_cannot_reach_the_gateway_through_send_again(gateway):
    # given: a reply with no template, refused when stored
    from commands.models import Command

    Command.objects.filter(code="1").update(handler_key="reply", config={"text": "Free gifts for you!"})
    sms("1")
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert (reply.status, reply.error_code) == ("refused", "dlt_no_template")

    # when
    assert messages_requeue(message_ids=[reply.id]) == 0

    # then
    assert message_deliver(message_id=reply.id) == "skipped"
    assert gateway.requests == []


def test_a_failed_send_is_queued_again_and_sent(gateway):
    failed = send()
    Message.objects.filter(id=failed.id).update(status=Status.FAILED, error_code="500", error_message="gateway down")
    assert messages_requeue(message_ids=[failed.id]) == 1
    assert message_deliver(message_id=failed.id) == "sent"
    assert len(gateway.requests) == 1


def test_the_admin_action_sends_failed_ones_again_and_says_why_it_skipped_the_others(gateway, admin_client):
    # given
    failed = OutboundMessageFactory(phone=PHONE, status=Status.FAILED, error_code="500")
    refused = [
        OutboundMessageFactory(phone=PHONE, status=Status.REFUSED, error_code="opted_out"),
        OutboundMessageFactory(phone=PHONE, status=Status.REFUSED, error_code="dlt_no_template"),
    ]
    delivered = OutboundMessageFactory(phone=PHONE, status=Status.DELIVERED, delivered_at=timezone.now())

    # when
    response = admin_client.post(
        reverse("admin:delivery_message_changelist"),
        {"action": "resend", "_selected_action": [failed.id, *(m.id for m in refused), delivered.id]},
        follow=True,
    )

    # then
    shown = [str(m) for m in response.context["messages"]]
    assert "1 message sent again." in shown
    assert f"Message #{refused[0].id} was refused (opted_out): a refused message is never sent." in shown
    assert f"Message #{refused[1].id} was refused (dlt_no_template): a refused message is never sent." in shown
    assert f"Message #{delivered.id} is delivered: only failed messages are sent again." in shown
    assert list(Message.objects.filter(status=Status.REFUSED).values_list("status", flat=True)) == ["refused"] * 2
    assert Message.objects.count() == 5  # the four, and the failed one's new send


# Opted out at the carrier -----------------------------------------------------------------------


@pytest.fixture
def twilio_api(db, provider_server, settings):
    settings.TWILIO_ACCOUNT_SID = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    settings.TWILIO_AUTH_TOKEN = "test-twilio-auth-token"
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_FROM = ""
    settings.TWILIO_API_BASE = provider_server.url
    return provider_server


def twilio_send() -> Message:
    return message_send(shortcode="57675", phone=PHONE, body="Your balance is Rs 120.00", provider="twilio")


def test_a_send_twilio_refuses_with_21610_suppresses_the_number(twilio_api):
    # given: Twilio answers as it does for a recipient who texted STOP to our number
    twilio_api.script = [FakeResponse(400, json.loads(load_fixture("delivery", "twilio", "api_error_21610.json")))]
    first = twilio_send()

    # when
    outcome = message_deliver(message_id=first.id)

    # then: the message failed with Twilio's reason, and the number is suppressed
    first.refresh_from_db()
    assert outcome == "failed"
    assert (first.status, first.error_code) == ("failed", "21610")
    assert "unsubscribed recipient" in first.error_message
    suppression = Suppression.objects.get(phone=PHONE)
    assert (suppression.shortcode, suppression.keyword, suppression.source) == ("57675", "21610", "provider")
    assert suppression.message_id == first.id
    # and the next send is refused without reaching Twilio
    second = twilio_send()
    assert (second.status, second.error_code) == ("refused", "opted_out")
    assert "opted out (21610)" in second.error_message
    assert len(twilio_api.requests) == 1


def test_other_twilio_refusals_suppress_nothing(twilio_api):
    twilio_api.script = [FakeResponse(400, json.loads(load_fixture("delivery", "twilio", "api_error_21211.json")))]
    message = twilio_send()
    assert message_deliver(message_id=message.id) == "failed"
    assert not Suppression.objects.exists()
    assert twilio_send().status == "queued"


def report(provider: str, fixture: str):
    body = load_fixture("delivery", provider, fixture)
    content_type = "application/json" if fixture.endswith(".json") else "application/x-www-form-urlencoded"
    webhook = webhook_request_from(RequestFactory().post("/status/", body, content_type=content_type))
    return get_provider(provider).parse_status(webhook, Verified(VOUCHED_WHOLE_REQUEST))[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "provider,provider_message_id,fixture,keyword",
    [
        ("twilio", "SM5f3e2b8c9d0a4b1c8e7f6a5b4c3d2e1f", "status_failed_opted_out.txt", "21610"),
        ("plivo", "db3ce55a-7f1d-11e1-8ea7-1231380bc196", "status_failed_opted_out.txt", "200"),
        ("msg91", "3763646c3058373530393138", "status_v3_blocked.json", "17"),
        ("twilio", "SM5f3e2b8c9d0a4b1c8e7f6a5b4c3d2e1f", "status_failed.txt", None),
        ("plivo", "db3ce55a-7f1d-11e1-8ea7-1231380bc196", "status_failed.txt", None),
        ("msg91", "3763646c3058373530393138", "status_v3_ndnc.json", None),
    ],
    ids=["twilio-21610", "plivo-200", "msg91-blocked", "twilio-30007", "plivo-900", "msg91-ndnc"],
)
def test_a_delivery_report_saying_opted_out_suppresses_the_number(provider, provider_message_id, fixture, keyword):
    # given: a reply the provider accepted
    sent = OutboundMessageFactory(
        provider=provider, provider_message_id=provider_message_id, phone=PHONE, status=Status.SENT
    )

    # when
    delivery_report_record(provider=provider, update=report(provider, fixture))

    # then: the message keeps the provider's verdict
    sent.refresh_from_db()
    assert sent.status in ("failed", "rejected")
    suppressed = Suppression.objects.filter(phone=PHONE, shortcode="57675", source="provider")
    assert list(suppressed.values_list("keyword", flat=True)) == ([keyword] if keyword else [])
    # and the next send to that number is refused only when the carrier said so
    after = message_send(shortcode="57675", phone=PHONE, body="Hello", provider=provider)
    assert after.status == ("refused" if keyword else "queued")

"""India DLT on every send: what leaves, with which IDs, and what is refused or held."""

from datetime import UTC, datetime

import pytest
from freezegun import freeze_time

from commands.models import Command, Shortcode
from conftest import FakeResponse
from conversations.tests.factories import BALANCE, PHONE, registered, service_shortcode
from conversations.tests.test_flows import sms
from delivery.deliver import message_deliver
from delivery.models import Message
from delivery.outbound import message_send
from delivery.send_options import SendOptions
from delivery.statuses import Direction
from delivery.sweeps import outbox_sweep
from templates.models import Template
from templates.tests.factories import HeaderFactory, TemplateFactory


@pytest.fixture
def gateway(db, provider_server, settings):
    """DLT-bound shortcode 57675 (header SMSGTE, every text it sends registered) on a local generic gateway."""
    settings.GATEWAY_OUTBOUND_URL = f"{provider_server.url}/send"
    service_shortcode(
        dlt=True,
        provider="generic",
        provider_config={"dlt_fields": {"dlt_template_id": "tmid", "dlt_entity_id": "peid", "dlt_category": "cat"}},
    )
    return provider_server


def test_a_matching_reply_carries_its_template_ids_to_the_provider(gateway):
    # when
    sms("2")
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    message_deliver(message_id=reply.id)
    # then
    template = Template.objects.get(content=BALANCE)
    reply.refresh_from_db()
    assert (reply.dlt_template_id, reply.dlt_entity_id, reply.dlt_category) == (
        template.dlt_template_id,
        template.entity.pe_id,
        "service_implicit",
    )
    sent = gateway.requests[0].json()
    assert (sent["from"], sent["tmid"], sent["peid"], sent["cat"]) == (
        "SMSGTE",
        template.dlt_template_id,
        template.entity.pe_id,
        "service_implicit",
    )


def test_a_reply_matching_no_template_is_refused_stored_and_never_sent(gateway):
    # given: a command whose text was never registered on the DLT platform
    Command.objects.filter(code="1").update(handler_key="reply", config={"text": "Free gifts for you!"})
    # when
    sms("1")
    # then
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert (reply.status, reply.error_code) == ("refused", "dlt_no_template")
    assert "No approved template of header SMSGTE matches" in reply.error_message
    assert message_deliver(message_id=reply.id) == "skipped"
    assert gateway.requests == []


@pytest.mark.parametrize(
    "text",
    [
        "Thank you Asha, you are registered",  # missing full stop
        "Thank you  Asha, you are registered.",  # double space before the value is still a value...
        "Thank you Asha, you’re registered.",  # curly apostrophe
    ],
)
def test_near_misses_are_refused(gateway, text):
    message = message_send(
        shortcode="57675", phone=PHONE, body=text, provider="generic", options=SendOptions(dlt_header="SMSGTE")
    )
    if text.startswith("Thank you  Asha"):
        # a variable may start with a space: the operator would accept this one too
        assert message.status == "queued"
    else:
        assert (message.status, message.error_code) == ("refused", "dlt_no_template")


def test_a_name_longer_than_a_variable_is_refused(gateway):
    sms("1")
    sms("A" * 31)
    reply = Message.objects.filter(direction=Direction.OUTBOUND).order_by("id").last()
    assert (reply.status, reply.error_code) == ("refused", "dlt_no_template")


def reply_through_template(values: list[str]) -> Template:
    """Have code 1's answer rendered from its DLT template, with `values` over the handler's values."""
    template = Template.objects.get(content=registered("{#var#}"))
    command = Command.objects.get(code="1")
    config = {**command.config, "template": template.dlt_template_id, "values": values}
    Command.objects.filter(pk=command.pk).update(config=config)
    return template


def test_a_command_replies_through_its_template(gateway):
    template = reply_through_template(["{answer}"])
    sms("1")
    assert sms("Asha") == registered("Asha")
    reply = Message.objects.filter(direction=Direction.OUTBOUND).order_by("id").last()
    assert reply.dlt_template_id == template.dlt_template_id


def test_a_broken_template_config_falls_back_to_the_handler_text(gateway, caplog):
    reply_through_template(["{nope}"])
    sms("1")
    assert sms("Asha") == registered("Asha")
    assert "could not be rendered" in caplog.text


def test_a_shortcode_not_bound_to_dlt_sends_any_text(gateway):
    Shortcode.objects.filter(number="57675").update(dlt_bound=False, country="US")
    Command.objects.filter(code="1").update(handler_key="reply", config={"text": "Free gifts for you!"})
    sms("1")
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert (reply.status, reply.dlt_template_id) == ("queued", "")


@pytest.fixture
def promotional(gateway):
    header = HeaderFactory(sender_id="SMSPRM", category="promotional")
    return TemplateFactory(
        dlt_template_id="1107170000000000099",
        category="promotional",
        content="Big sale: {#var#} off today only.",
        headers=[header],
    )


@freeze_time("2026-11-22 17:00:00")  # 22:30 IST: outside 09:00-21:00
def test_promotional_text_outside_the_window_is_held_until_nine(promotional):
    # when
    message = message_send(
        shortcode="57675",
        phone=PHONE,
        body="Big sale: 50% off today only.",
        provider="console",
        options=SendOptions(dlt_header="SMSPRM"),
    )
    # then: held, visible with its time, not handed to a worker
    assert message.status == "queued"
    assert message.send_after == datetime(2026, 11, 23, 3, 30, tzinfo=UTC)  # 09:00 IST
    assert message_deliver(message_id=message.id) == "skipped"


def test_held_promotional_text_goes_out_when_the_window_opens(promotional, settings):
    with freeze_time("2026-11-22 17:00:00"):
        message = message_send(
            shortcode="57675",
            phone=PHONE,
            body="Big sale: 50% off today only.",
            provider="console",
            options=SendOptions(dlt_header="SMSPRM"),
        )
    with freeze_time("2026-11-23 03:31:00"):
        assert outbox_sweep() == {"requeued": 1, "reset": 0}
    message.refresh_from_db()
    assert message.status == "sent"


@freeze_time("2026-11-22 06:00:00")  # 11:30 IST
def test_promotional_text_inside_the_window_goes_at_once(promotional):
    message = message_send(
        shortcode="57675",
        phone=PHONE,
        body="Big sale: 50% off today only.",
        provider="console",
        options=SendOptions(dlt_header="SMSPRM"),
    )
    assert (message.status, message.send_after, message.dlt_category) == ("queued", None, "promotional")
    assert message_deliver(message_id=message.id) == "sent"


def test_gateway_refusing_the_dlt_template_is_a_permanent_failure(gateway):
    gateway.script = [FakeResponse(400, {"error": "DLT 630 template not found"})]
    sms("2")
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert message_deliver(message_id=reply.id) == "failed"
    reply.refresh_from_db()
    assert "630" in reply.error_message


def test_a_template_revoked_after_queuing_is_refused_at_send_time(gateway):
    # given: a reply queued while its template was approved
    sms("2")
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    template = Template.objects.get(content=BALANCE)
    assert (reply.status, reply.dlt_template_id) == ("queued", template.dlt_template_id)
    template.status = Template.Status.INACTIVE
    template.save()

    # when
    outcome = message_deliver(message_id=reply.id)

    # then
    reply.refresh_from_db()
    assert outcome == "refused"
    assert (reply.status, reply.error_code) == ("refused", "dlt_no_template")
    assert "inactive (DLT 631)" in reply.error_message
    assert gateway.requests == []


def test_a_text_now_matching_another_template_is_sent_with_todays_ids(gateway):
    # given: the template is re-registered under a new ID after the reply was queued
    sms("2")
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    old = Template.objects.get(content=BALANCE)
    TemplateFactory(
        entity=old.entity,
        dlt_template_id="1107170000000000055",
        category=old.category,
        content=old.content,
        headers=list(old.headers.all()),
    )
    old.status = Template.Status.INACTIVE
    old.save()

    # when
    assert message_deliver(message_id=reply.id) == "sent"

    # then
    reply.refresh_from_db()
    assert reply.dlt_template_id == "1107170000000000055"
    assert gateway.requests[0].json()["tmid"] == "1107170000000000055"

"""SendOptions: what a message is stored with, and what its provider receives from it."""

import pytest

from conversations.tests.factories import PHONE, service_shortcode
from conversations.tests.test_flows import sms
from delivery.deliver import message_deliver, send_options
from delivery.models import Message
from delivery.outbound import message_send
from delivery.send_options import SendOptions
from delivery.statuses import Direction
from delivery.tests.factories import OutboundMessageFactory


def test_options_survive_the_json_column():
    # given
    options = SendOptions(
        provider_config={"outbound_url": "https://gw.example.com/sms", "route": "4"},
        sender="ACME",
        max_mps=5,
        dlt_header="SMSGTE",
        ignore_suppression=True,
    )

    # when
    stored = options.to_json()

    # then
    assert SendOptions.from_json(stored) == options


def test_the_stored_shape_is_the_one_rows_already_have():
    # Rows stored before SendOptions existed keep being read: flat options, the rules under "send_rules".
    stored = {
        "outbound_url": "https://gw.example.com/sms",
        "sender": "ACME",
        "max_mps": 2,
        "send_rules": {"dlt_header": "SMSGTE", "ignore_suppression": False},
    }

    options = SendOptions.from_json(stored)

    assert options == SendOptions(
        provider_config={"outbound_url": "https://gw.example.com/sms"}, sender="ACME", max_mps=2, dlt_header="SMSGTE"
    )
    assert options.to_json() == stored


@pytest.mark.parametrize("stored", [{}, None, {"send_rules": None}])
def test_missing_options_mean_no_rules_and_the_shortcode_as_sender(stored):
    assert SendOptions.from_json(stored) == SendOptions()


def test_a_shortcode_config_cannot_carry_our_keys():
    # given: staff-edited provider options that name what only we decide
    config = {"sender": "SPOOF", "max_mps": 1000, "send_rules": {"ignore_suppression": True}, "route": "4"}

    # when
    options = SendOptions(provider_config=config, sender="ACME")

    # then
    assert options.provider_config == {"route": "4"}
    assert options.to_json()["send_rules"] == {"dlt_header": None, "ignore_suppression": False}
    assert options.provider_options() == {"route": "4", "sender": "ACME"}


@pytest.mark.django_db
def test_what_the_provider_receives_has_no_rules_and_carries_the_dlt_ids():
    # given
    message = OutboundMessageFactory(
        provider_options=SendOptions(provider_config={"route": "4"}, sender="ACME", dlt_header="SMSGTE").to_json(),
        dlt_template_id="1107170000000000011",
        dlt_entity_id="1201170000000000001",
        dlt_category="service_implicit",
    )

    # then
    assert send_options(message) == {
        "route": "4",
        "sender": "ACME",
        "dlt_template_id": "1107170000000000011",
        "dlt_entity_id": "1201170000000000001",
        "dlt_category": "service_implicit",
    }


@pytest.mark.django_db
def test_message_send_stores_its_options():
    # when
    message = message_send(
        shortcode="57675",
        phone=PHONE,
        body="Hello",
        provider="console",
        options=SendOptions(provider_config={"route": "4"}, sender="ACME", max_mps=3),
    )

    # then
    message.refresh_from_db()
    assert SendOptions.from_json(message.provider_options) == SendOptions(
        provider_config={"route": "4"}, sender="ACME", max_mps=3
    )
    assert message_deliver(message_id=message.id) == "sent"


@pytest.mark.django_db
@pytest.mark.parametrize("text,to_suppressed_too", [("2", False), ("STOP", True), ("HELP", True)])
def test_a_reply_carries_its_shortcodes_options(text, to_suppressed_too):
    # given: a DLT-bound shortcode with its own options and throughput
    service_shortcode(dlt=True, provider="console", provider_config={"route": "4"}, max_mps=7)

    # when
    sms(text)

    # then
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert SendOptions.from_json(reply.provider_options) == SendOptions(
        provider_config={"route": "4"},
        sender="SMSGTE",
        max_mps=7,
        dlt_header="SMSGTE",
        ignore_suppression=to_suppressed_too,
    )

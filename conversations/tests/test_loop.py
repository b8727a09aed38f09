"""The whole loop: inbound webhook -> reply handed to the gateway -> status webhook -> delivered."""

import contextlib
from functools import partial

import pytest

from conftest import FakeResponse, load_fixture, wait_until
from conversations.tests.factories import BALANCE, service_shortcode
from delivery.models import DeliveryReport, Message
from delivery.statuses import Direction
from templates.models import Template


def dlt_shortcode(provider_server):
    return service_shortcode(
        dlt=True,
        provider="generic",
        provider_config={
            "outbound_url": f"{provider_server.url}/send",
            # this gateway takes the DLT IDs as `template_id` and `pe_id`
            "dlt_fields": {"dlt_template_id": "template_id", "dlt_entity_id": "pe_id"},
        },
    )


def run_loop(post_webhook, provider_server, fixture: str, commits=contextlib.nullcontext):
    # given: a DLT-bound shortcode replying through the generic gateway
    dlt_shortcode(provider_server)
    template = Template.objects.get(content=BALANCE)
    provider_server.script = [FakeResponse(201, {"id": "gw-1"})]

    # when: an aggregator posts an inbound SMS "2"
    with commits():
        response = post_webhook("/webhooks/generic/inbound/", load_fixture("conversations", "generic", fixture))
    assert response.status_code == 200, response.content

    # then: the reply reached the gateway with our reference and callback URL
    sent = provider_server.wait_for(1)[0]
    payload = sent.json()
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert payload["to"] == "+919876543210"
    assert payload["from"] == "SMSGTE"  # the shortcode's DLT header
    assert (payload["template_id"], payload["pe_id"]) == (template.dlt_template_id, template.entity.pe_id)
    assert payload["message"] == BALANCE
    assert payload["reference"] == str(reply.uuid)
    assert payload["callback_url"] == f"https://sms.example.com/webhooks/generic/status/?ref={reply.uuid}"
    wait_until(lambda: Message.objects.get(pk=reply.pk).status == "sent", what="reply marked sent")
    reply.refresh_from_db()
    assert reply.provider_message_id == "gw-1"
    inbound = Message.objects.get(direction=Direction.INBOUND)
    wait_until(lambda: Message.objects.get(pk=inbound.pk).status == "handled", what="inbound handled")
    assert reply.in_reply_to_id == inbound.id

    # when: the gateway reports delivery
    response = post_webhook(f"/webhooks/generic/status/?ref={reply.uuid}", {"id": "gw-1", "status": "delivered"})

    # then
    assert response.status_code == 200
    reply.refresh_from_db()
    assert reply.status == "delivered"
    assert reply.delivered_at is not None
    assert DeliveryReport.objects.get().message_id == reply.id


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fixture", ["inbound_form.txt", "inbound_json.json", "inbound_seed_names.json", "inbound_seed_form.txt"]
)
def test_loop_on_embedded_default(post_webhook, provider_server, django_capture_on_commit_callbacks, fixture):
    run_loop(post_webhook, provider_server, fixture, partial(django_capture_on_commit_callbacks, execute=True))


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fixture", ["inbound_form.txt", "inbound_json.json"])
def test_loop_on_postgres_redis_and_a_celery_worker(celery_worker, post_webhook, provider_server, fixture):
    run_loop(post_webhook, provider_server, fixture)

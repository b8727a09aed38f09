"""
Delivery reports: stored as received, moving a message's status forward only. Every
provider's status words through its own webhook: test_provider_contract.py.
"""

import pytest

from conftest import load_fixture
from delivery.models import DeliveryReport, Message
from delivery.providers.base import StatusUpdate
from delivery.reports import delivery_report_record, message_status_advance
from delivery.statuses import Direction, Status
from delivery.tests.factories import OutboundMessageFactory

STATUS = "/webhooks/generic/status/"


@pytest.mark.django_db
def test_failed_report_keeps_the_error():
    message = OutboundMessageFactory(status=Status.SENT, provider_message_id="gw-1")
    update = StatusUpdate(
        status=Status.FAILED,
        provider_status="failed",
        provider_message_id="gw-1",
        error_code="30003",
        error_message="x",
    )
    delivery_report_record(provider="generic", update=update)
    message.refresh_from_db()
    assert (message.status, message.error_code, message.error_message) == ("failed", "30003", "x")


@pytest.mark.django_db
def test_unknown_status_is_stored_logged_and_acknowledged(post_webhook, caplog):
    message = OutboundMessageFactory(status=Status.SENT, provider_message_id="gw-1")
    response = post_webhook(STATUS, load_fixture("delivery", "generic", "status_unknown.json"))
    assert response.status_code == 200
    report = DeliveryReport.objects.get()
    assert (report.status, report.provider_status, report.applied) == ("", "on_its_way", False)
    assert "unknown status 'on_its_way'" in caplog.text
    message.refresh_from_db()
    assert message.status == "sent"


@pytest.mark.django_db
def test_late_sent_never_overwrites_delivered():
    # given
    message = OutboundMessageFactory(status=Status.SENT, provider_message_id="gw-1")
    # when
    delivered = delivery_report_record(
        provider="generic", update=StatusUpdate(Status.DELIVERED, "delivered", provider_message_id="gw-1")
    )
    late = delivery_report_record(provider="generic", update=StatusUpdate("sent", "sent", provider_message_id="gw-1"))
    # then
    message.refresh_from_db()
    assert message.status == "delivered"
    assert (delivered.applied, late.applied) == (True, False)
    assert DeliveryReport.objects.count() == 2


@pytest.mark.django_db
def test_duplicate_report_changes_nothing():
    message = OutboundMessageFactory(status=Status.SENT, provider_message_id="gw-1")
    update = StatusUpdate(Status.DELIVERED, "delivered", provider_message_id="gw-1")
    first = delivery_report_record(provider="generic", update=update)
    message.refresh_from_db()
    delivered_at = message.delivered_at
    second = delivery_report_record(provider="generic", update=update)
    message.refresh_from_db()
    assert (first.applied, second.applied) == (True, False)
    assert message.delivered_at == delivered_at


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sequence,final",
    [
        (["delivered", "sent", "queued", "delivered"], "delivered"),
        (["sent", "undelivered", "delivered"], "undelivered"),
        (["failed", "sent"], "failed"),
        (["queued", "sent"], "sent"),
    ],
)
def test_out_of_order_reports_end_in_the_right_status(sequence, final):
    message = OutboundMessageFactory(status=Status.SENDING, provider_message_id="gw-1")
    for status in sequence:
        delivery_report_record(provider="generic", update=StatusUpdate(status, status, provider_message_id="gw-1"))
    message.refresh_from_db()
    assert message.status == final


@pytest.mark.django_db
def test_status_advance_is_forward_only():
    message = OutboundMessageFactory(status=Status.QUEUED)
    from django.utils import timezone

    now = timezone.now()
    assert message_status_advance(message_id=message.id, new_status=Status.SENT, at=now)
    assert not message_status_advance(message_id=message.id, new_status=Status.SENDING, at=now)
    assert message_status_advance(message_id=message.id, new_status=Status.DELIVERED, at=now)
    assert not message_status_advance(message_id=message.id, new_status=Status.FAILED, at=now)
    message.refresh_from_db()
    assert (message.status, message.sent_at, message.delivered_at) == ("delivered", now, now)


@pytest.mark.django_db
def test_report_matched_by_our_reference_before_the_provider_id_is_known(post_webhook):
    message = OutboundMessageFactory(status=Status.SENDING, provider_message_id=None)
    response = post_webhook(f"{STATUS}?ref={message.uuid}", {"id": "gw-77", "status": "delivered"})
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered"


@pytest.mark.django_db
def test_report_before_the_provider_id_is_kept_and_applied_once_the_id_is_known():
    # given: the report arrives first, matching nothing
    report = delivery_report_record(
        provider="generic", update=StatusUpdate("delivered", "delivered", provider_message_id="gw-9")
    )
    assert report.message is None
    # when: the send records that id
    from delivery.reports import delivery_reports_apply_pending

    message = OutboundMessageFactory(status=Status.SENT, provider_message_id="gw-9")
    moved = delivery_reports_apply_pending(message_id=message.id, provider="generic", provider_message_id="gw-9")
    # then
    assert moved == 1
    message.refresh_from_db()
    report.refresh_from_db()
    assert (message.status, report.message_id, report.applied) == ("delivered", message.id, True)


@pytest.mark.django_db
def test_report_with_neither_id_nor_reference_is_a_400(post_webhook):
    response = post_webhook(STATUS, {"status": "delivered"})
    assert response.status_code == 400
    assert response.json()["field"] == "id"
    assert not DeliveryReport.objects.exists()


@pytest.mark.django_db
def test_report_for_an_inbound_message_id_matches_nothing():
    inbound = Message.objects.create(
        direction=Direction.INBOUND,
        status=Status.HANDLED,
        shortcode="57675",
        phone="+919876543210",
        provider="generic",
        provider_message_id="gw-1",
    )
    report = delivery_report_record(
        provider="generic", update=StatusUpdate(Status.DELIVERED, "delivered", provider_message_id="gw-1")
    )
    assert report.message is None
    inbound.refresh_from_db()
    assert inbound.status == "handled"

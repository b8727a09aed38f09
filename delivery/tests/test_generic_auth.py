"""
Generic provider authentication: the shared-secret header, the timestamped HMAC, and
which reference a signed delivery report may move.
"""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from conftest import WEBHOOK_SECRET, generic_signed_headers, load_fixture
from delivery.models import DeliveryReport, Message
from delivery.providers.generic import signature_fresh
from delivery.statuses import Direction, Status
from delivery.tests.factories import OutboundMessageFactory

INBOUND = "/webhooks/generic/inbound/"
STATUS = "/webhooks/generic/status/"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INBOUND_BODY = b'{"from": "+919876543210", "to": "57675", "body": "2", "id": "gen-auth-1"}'


# The timestamp, as a pure function -------------------------------------------------------------


T = int(NOW.timestamp())


@pytest.mark.parametrize(
    "timestamp,fresh",
    [
        (f"{T}", True),
        (f"{T - 300}", True),
        (f"{T + 300}", True),  # ahead: clock skew
        (f"{T - 301}", False),
        (f"{T + 301}", False),
        ("", False),
        ("soon", False),
        (f" {T}", False),
        (f"+{T}", False),
        (f"{T:_}", False),  # int() would read it; the header must be plain digits
    ],
)
def test_signature_fresh_within_the_window_either_way(settings, timestamp, fresh):
    settings.WEBHOOK_SIGNATURE_MAX_AGE_SECONDS = 300
    assert signature_fresh(timestamp, now=T) is fresh


# Inbound ----------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [INBOUND_BODY, b"from=%2B919876543210&to=57675&body=2&id=gen-auth-1"],
    ids=["json", "form"],
)
def test_timestamped_signature_is_accepted(post_webhook, body):
    # when
    response = post_webhook(INBOUND, body, sign=False, headers=generic_signed_headers(body))

    # then
    assert response.status_code == 200, response.content
    assert Message.objects.get(direction=Direction.INBOUND).provider_message_id == "gen-auth-1"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "age,max_age,expected",
    [(299, 300, 200), (301, 300, 403), (-301, 300, 403), (61, 60, 403), (3600, 300, 403)],
    ids=["just-fresh", "expired", "from-the-future", "setting-honoured", "hour-old"],
)
def test_signature_outside_the_window_is_refused(post_webhook, settings, age, max_age, expected):
    # given: a request signed `age` seconds before now
    settings.WEBHOOK_SIGNATURE_MAX_AGE_SECONDS = max_age
    headers = generic_signed_headers(INBOUND_BODY, timestamp=int(NOW.timestamp()) - age)

    # when
    with freeze_time(NOW):
        response = post_webhook(INBOUND, INBOUND_BODY, sign=False, headers=headers)

    # then
    assert response.status_code == expected, response.content
    assert Message.objects.exists() is (expected == 200)


@pytest.mark.django_db
def test_captured_request_expires(post_webhook):
    # given: a request received at NOW
    with freeze_time(NOW):
        headers = generic_signed_headers(INBOUND_BODY)
        assert post_webhook(INBOUND, INBOUND_BODY, sign=False, headers=headers).status_code == 200
    replayed = INBOUND_BODY.replace(b'"gen-auth-1"', b'"gen-auth-2"')

    # when: its headers come back six minutes later with a body whose id changed
    with freeze_time(NOW + timedelta(minutes=6)):
        response = post_webhook(INBOUND, INBOUND_BODY, sign=False, headers=headers)
        forged = post_webhook(INBOUND, replayed, sign=False, headers=headers)

    # then
    assert (response.status_code, forged.status_code) == (403, 403)
    assert "X-Signature-Timestamp" in response.json()["error"]
    assert Message.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tamper",
    ["timestamp", "body", "secret", "no-timestamp", "body-only-signature"],
)
def test_a_changed_part_is_refused(post_webhook, tamper):
    # given
    headers = generic_signed_headers(INBOUND_BODY)
    body = INBOUND_BODY
    if tamper == "timestamp":
        headers["X-Signature-Timestamp"] = str(int(headers["X-Signature-Timestamp"]) - 1)
    elif tamper == "body":
        body = body.replace(b'"2"', b'"3"')
    elif tamper == "secret":
        headers = generic_signed_headers(body, secret="another-secret")
    elif tamper == "no-timestamp":
        del headers["X-Signature-Timestamp"]
    elif tamper == "body-only-signature":
        headers = {"X-Signature": hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()}

    # when
    response = post_webhook(INBOUND, body, sign=False, headers=headers)

    # then
    assert response.status_code == 403
    assert not Message.objects.exists()


# Status: the signed reference wins ----------------------------------------------------------------


def signed_report(reference: str = "", **fields) -> bytes:
    report = {"id": "gw-1", "status": "failed", "error_code": "1", **fields}
    if reference:
        report["reference"] = reference
    return json.dumps(report).encode()


@pytest.mark.django_db
def test_captured_signed_report_replayed_with_another_ref_is_refused(post_webhook):
    # given: a signed report on our message, and another message
    ours = OutboundMessageFactory(provider="generic", provider_message_id="gw-1", status=Status.SENT)
    other = OutboundMessageFactory(provider="generic", status=Status.SENT)
    body = signed_report(str(ours.uuid))

    # when: the capture is sent at the other message's ?ref=
    response = post_webhook(f"{STATUS}?ref={other.uuid}", body, sign=False, headers=generic_signed_headers(body))

    # then
    assert response.status_code == 403
    assert "signed reference" in response.json()["error"]
    other.refresh_from_db()
    ours.refresh_from_db()
    assert (other.status, ours.status) == ("sent", "sent")
    assert not DeliveryReport.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "?ref={uuid}", "?ref={upper}"], ids=["no-ref", "same-ref", "same-ref-upper"])
def test_signed_reference_moves_its_message(post_webhook, query):
    # given
    message = OutboundMessageFactory(provider="generic", status=Status.SENT)
    body = signed_report(str(message.uuid), id="gw-unknown", status="delivered")
    path = STATUS + query.format(uuid=message.uuid, upper=str(message.uuid).upper())

    # when
    response = post_webhook(path, body, sign=False, headers=generic_signed_headers(body))

    # then
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == "delivered"


@pytest.mark.django_db
def test_unsigned_ref_beside_a_signed_report_without_a_reference_is_not_trusted(post_webhook):
    # given: the report names only the provider's id, which is another message's
    target = OutboundMessageFactory(provider="generic", status=Status.SENT)
    owner = OutboundMessageFactory(provider="generic", provider_message_id="gw-1", status=Status.SENT)
    body = signed_report()

    # when
    response = post_webhook(f"{STATUS}?ref={target.uuid}", body, sign=False, headers=generic_signed_headers(body))

    # then: matched on the signed provider id; the ?ref= moved nothing
    assert response.status_code == 200, response.content
    target.refresh_from_db()
    owner.refresh_from_db()
    assert (target.status, owner.status) == ("sent", "failed")
    assert DeliveryReport.objects.get().message_id == owner.id


@pytest.mark.django_db
def test_shared_secret_header_vouches_for_the_whole_url(post_webhook):
    # given: X-Webhook-Secret authenticates the request itself, query included
    message = OutboundMessageFactory(provider="generic", status=Status.SENT)

    # when
    response = post_webhook(f"{STATUS}?ref={message.uuid}", signed_report(id="gw-x", status="delivered"))

    # then
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == "delivered"


@pytest.mark.django_db
def test_recorded_status_fixture_signed_with_a_timestamp(post_webhook):
    # given
    message = OutboundMessageFactory(provider="generic", provider_message_id="gw-1", status=Status.SENT)
    body = load_fixture("delivery", "generic", "status_delivered.json")

    # when
    response = post_webhook(STATUS, body, sign=False, headers=generic_signed_headers(body))

    # then
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == "delivered"

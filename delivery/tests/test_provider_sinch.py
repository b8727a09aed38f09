"""
Sinch's own: its HMAC scheme and token alternative, batch and recipient reports, the
reference rules, and sends against a local HTTP server. What every provider does:
test_provider_contract.py.
"""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from freezegun import freeze_time

from conftest import FakeResponse, load_fixture, sinch_signed_headers
from delivery.deliver import message_deliver
from delivery.models import DeliveryReport, Message
from delivery.providers import get_provider
from delivery.providers.base import PermanentSendError, SendError, TransientSendError
from delivery.providers.sinch import signature, signature_fresh, signature_valid
from delivery.statuses import Status
from delivery.tests.factories import OutboundMessageFactory, outbound_sms

SECRET = "sinch-callback-secret"
REFERENCE = uuid.UUID("0b1f9d3c-5a57-4c2e-9d8e-3f7a2b1c4d5e")  # client_reference in the status fixtures
BATCH_ID = "01J0S1NCHBATCH00000000000A"


def sinch_headers(body: bytes, *, secret: str = SECRET, nonce: str | None = None, timestamp=None):
    """Signed as Sinch signs, written out in conftest rather than borrowed from the module under test."""
    return sinch_signed_headers(body, secret=secret, nonce=nonce, timestamp=timestamp)


@pytest.fixture
def sinch(settings):
    settings.SINCH_WEBHOOK_SECRET = SECRET
    settings.SINCH_WEBHOOK_TOKEN = ""
    settings.SINCH_SERVICE_PLAN_ID = "plan-1"
    settings.SINCH_API_TOKEN = "sinch-api-token"
    return settings


@pytest.fixture
def post_signed(post_webhook):
    def post(path: str, body: bytes, **kwargs):
        return post_webhook(path, body, sign=False, headers=sinch_headers(body, **kwargs))

    return post


outbound = partial(outbound_sms, provider="sinch", reference=REFERENCE)


# Signature, as pure functions -----------------------------------------------------------


def test_signature_reproduces_the_sinch_sdk_vector():
    # given: the Conversation API test vector of sinch-sdk-python (same scheme as SMS callbacks)
    body = (
        b'{"app_id":"01EB37HMH1M6SV18BSNS3G135H","accepted_time":"2020-11-17T15:09:11.659Z",'
        b'"project_id":"c36f3d3d-1513-2edd-ae42-11995557ff61",'
        b'"message_delivery_report":{"message_id":"01EQBC1A3BEK731GY4YXEN0C2R",'
        b'"conversation_id":"01EPYATA64TMNZ1FV02JKF12JF","status":"QUEUED_ON_CHANNEL",'
        b'"contact_id":"01EXA07N79THJ20WSN6AS30TMW"}}'
    )
    nonce, timestamp, expected = (
        "01FJA8B4A7BM43YGWSG9GBV067",
        "1634579353",
        "Yc+3R1pIS78xLASybulhs8BsSo9BPB3Pr92QCUoczfk=",
    )

    # when / then
    assert signature("foo_secret1234", body, nonce, timestamp) == expected
    assert signature_valid("foo_secret1234", body, nonce, timestamp, expected)
    assert not signature_valid("foo_secret1234", body + b" ", nonce, timestamp, expected)
    assert not signature_valid("", body, nonce, timestamp, expected)
    assert not signature_valid("foo_secret1234", body, nonce, timestamp, "")


@pytest.mark.parametrize(
    "age,fresh",
    [(0, True), (299, True), (-299, True), (301, False), (-301, False)],
)
def test_signature_timestamp_must_be_within_five_minutes(age, fresh):
    assert signature_fresh("1634579353", now=1634579353 + age) is fresh


def test_signature_timestamp_must_be_a_number():
    assert not signature_fresh("yesterday", now=1634579353)


# Inbound ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_inbound_other_than_mo_text_is_refused_naming_the_type(sinch, post_signed):
    # given: a binary MO (Base64 body and UDH), which no shortcode command can read
    payload = json.dumps(
        {"type": "mo_binary", "id": "01J0B", "from": "919876543210", "to": "57675", "body": "AAE=", "udh": "0500"}
    ).encode()

    # when
    response = post_signed("/webhooks/sinch/inbound/", payload)

    # then
    assert response.status_code == 400
    assert response.json()["field"] == "type"
    assert not Message.objects.exists()


# Delivery reports ------------------------------------------------------------------------

STATUS_CASES = [
    # Sinch's quirks; one report per status word is the provider contract's.
    # fixture, Sinch word, our status stored on the report, message status after it
    ("status_recipient_delivered_uppercase.json", "DELIVERED", "delivered", "delivered"),
    ("status_batch_summary.json", "Delivered", "delivered", "delivered"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("fixture,provider_status,report_status,message_status", STATUS_CASES)
def test_status_report_is_stored_and_moves_the_message(
    sinch, post_signed, fixture, provider_status, report_status, message_status
):
    # given: our reply, already accepted by Sinch as batch BATCH_ID
    message = OutboundMessageFactory(uuid=REFERENCE, provider="sinch", provider_message_id=BATCH_ID, status=Status.SENT)

    # when
    response = post_signed("/webhooks/sinch/status/", load_fixture("delivery", "sinch", fixture))

    # then
    assert response.status_code == 200, response.content
    report = DeliveryReport.objects.get()
    assert (report.message_id, report.provider, report.provider_message_id) == (message.id, "sinch", BATCH_ID)
    assert (report.provider_status, report.status) == (provider_status, report_status)
    message.refresh_from_db()
    assert message.status == message_status


@pytest.mark.django_db
def test_error_code_is_kept_in_words(sinch, post_signed):
    # given
    OutboundMessageFactory(uuid=REFERENCE, provider="sinch", provider_message_id=BATCH_ID, status=Status.SENT)

    # when
    post_signed("/webhooks/sinch/status/", load_fixture("delivery", "sinch", "status_recipient_aborted.json"))

    # then
    message = Message.objects.get()
    assert (message.error_code, message.error_message) == ("412", "unprovisioned region")


@pytest.mark.django_db
def test_full_batch_report_gives_one_report_per_recipient(sinch, post_signed):
    # given
    OutboundMessageFactory(uuid=REFERENCE, provider="sinch", provider_message_id=BATCH_ID, status=Status.SENT)

    # when
    response = post_signed("/webhooks/sinch/status/", load_fixture("delivery", "sinch", "status_batch_full.json"))

    # then
    assert response.status_code == 200
    reports = {r.raw_payload["recipient"]: r.status for r in DeliveryReport.objects.all()}
    assert reports == {"919876543210": "delivered", "919876543211": "delivered", "919876543212": "undelivered"}


@pytest.mark.django_db
def test_ref_in_a_token_authenticated_callback_url_finds_the_message_without_a_client_reference(sinch, post_webhook):
    # given: token auth, which vouches for the whole URL; the message is not yet known by
    # its batch id (the report beat the send's bookkeeping)
    sinch.SINCH_WEBHOOK_SECRET = ""
    sinch.SINCH_WEBHOOK_TOKEN = "sinch-token"
    message = OutboundMessageFactory(provider="sinch", status=Status.SENDING)
    report = json.loads(load_fixture("delivery", "sinch", "status_recipient_delivered.json"))
    del report["client_reference"]

    # when
    path = f"/webhooks/sinch/status/?token=sinch-token&ref={message.uuid}"
    response = post_webhook(path, json.dumps(report).encode(), sign=False)

    # then
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered"
    assert message.delivered_at.isoformat() == "2024-06-06T08:17:00+00:00"  # the operator's time


@pytest.mark.django_db
def test_unsigned_ref_beside_an_hmac_signed_report_without_a_client_reference_is_not_trusted(sinch, post_signed):
    # given: the HMAC covers the body only; the body names no message of ours
    message = OutboundMessageFactory(provider="sinch", status=Status.SENT)
    report = json.loads(load_fixture("delivery", "sinch", "status_recipient_failed.json"))
    del report["client_reference"]

    # when: the query names our message
    response = post_signed(f"/webhooks/sinch/status/?ref={message.uuid}", json.dumps(report).encode())

    # then: kept, matched on the batch id alone (which is not this message's), and moving nothing
    assert response.status_code == 200
    report_row = DeliveryReport.objects.get()
    assert (report_row.message_id, report_row.reference) == (None, None)
    message.refresh_from_db()
    assert message.status == "sent"


@pytest.mark.django_db
def test_captured_signed_report_replayed_with_another_ref_is_refused(sinch, post_signed):
    # given: our message the report is about, and another one
    OutboundMessageFactory(uuid=REFERENCE, provider="sinch", provider_message_id=BATCH_ID, status=Status.SENT)
    other = OutboundMessageFactory(provider="sinch", status=Status.SENT)
    body = load_fixture("delivery", "sinch", "status_recipient_aborted.json")

    # when: the signed body (client_reference REFERENCE) is sent at the other message's ?ref=
    response = post_signed(f"/webhooks/sinch/status/?ref={other.uuid}", body)

    # then
    assert response.status_code == 403
    assert "signed reference" in response.json()["error"]
    other.refresh_from_db()
    assert other.status == "sent"
    assert not DeliveryReport.objects.exists()


@pytest.mark.django_db
def test_report_without_our_reference_is_matched_on_the_batch_id(sinch, post_signed):
    # given
    message = OutboundMessageFactory(provider="sinch", provider_message_id=BATCH_ID, status=Status.SENT)
    report = json.loads(load_fixture("delivery", "sinch", "status_recipient_delivered.json"))
    del report["client_reference"]

    # when
    post_signed("/webhooks/sinch/status/", json.dumps(report).encode())

    # then
    message.refresh_from_db()
    assert message.status == "delivered"


# Authentication --------------------------------------------------------------------------


def _tamper(case: str, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    headers = dict(headers)
    if case == "changed body byte":
        body = body.replace(b'"Delivered"', b'"Delivered "')
    elif case == "changed nonce":
        headers["x-sinch-webhook-signature-nonce"] += "x"
    elif case.startswith("missing "):
        del headers[case.removeprefix("missing ")]
    elif case == "wrong secret":
        headers = sinch_headers(body, secret="not-the-secret")
    return body, headers


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case,expected",
    [
        ("good", 200),
        ("changed body byte", 403),
        ("changed nonce", 403),
        ("wrong secret", 403),
        ("missing x-sinch-webhook-signature", 403),
        ("missing x-sinch-webhook-signature-nonce", 403),
        ("missing x-sinch-webhook-signature-timestamp", 403),
    ],
)
def test_hmac_signature(sinch, post_webhook, case, expected):
    # given
    body = load_fixture("delivery", "sinch", "status_recipient_delivered.json")
    body, headers = _tamper(case, body, sinch_headers(body))

    # when
    response = post_webhook("/webhooks/sinch/status/", body, sign=False, headers=headers)

    # then
    assert response.status_code == expected
    assert DeliveryReport.objects.exists() is (expected == 200)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/webhooks/sinch/status/", "/webhooks/sinch/inbound/"])
def test_replayed_nonce_is_refused_within_the_freshness_window(sinch, post_webhook, path):
    # given: a signed request, received once
    fixture = "status_recipient_delivered.json" if "status" in path else "inbound_mo_text.json"
    body = load_fixture("delivery" if "status" in path else "conversations", "sinch", fixture)
    headers = sinch_headers(body)
    first = post_webhook(path, body, sign=False, headers=headers)

    # when: the same capture arrives again four minutes later, still inside the five-minute window
    with freeze_time(datetime.now(UTC) + timedelta(minutes=4)):
        replay = post_webhook(path, body, sign=False, headers=headers)

    # then
    assert first.status_code == 200, first.content
    assert replay.status_code == 403
    assert "already used" in replay.json()["error"]
    assert DeliveryReport.objects.count() + Message.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("age,expected", [(-240, 200), (-301, 403), (600, 403)])
def test_hmac_timestamp_older_than_five_minutes_is_refused(sinch, post_signed, age, expected):
    # when: signed correctly, but `age` seconds away from now (a replay, or a skewed clock)
    body = load_fixture("delivery", "sinch", "status_recipient_delivered.json")
    response = post_signed("/webhooks/sinch/status/", body, timestamp=int(time.time()) + age)

    # then
    assert response.status_code == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query,expected",
    [("?token=sinch-token", 200), ("?token=wrong", 403), ("", 403)],
)
def test_token_auth_when_no_hmac_secret(settings, post_webhook, query, expected):
    # given: Sinch does not sign by default; the token in the callback URL stands in
    settings.SINCH_WEBHOOK_SECRET = ""
    settings.SINCH_WEBHOOK_TOKEN = "sinch-token"

    # when
    response = post_webhook(
        f"/webhooks/sinch/inbound/{query}", load_fixture("conversations", "sinch", "inbound_mo_text.json"), sign=False
    )

    # then
    assert response.status_code == expected


# Sending ---------------------------------------------------------------------------------


def test_send_posts_the_documented_batch(sinch, provider_server):
    # given
    sinch.SINCH_API_BASE = provider_server.url
    provider_server.script = [FakeResponse(201, {"id": "01J0BATCHFROMSINCH00000001", "to": ["919876543210"]})]

    # when
    result = get_provider("sinch").send(outbound())

    # then
    request = provider_server.requests[0]
    assert (request.method, request.path) == ("POST", "/xms/v1/plan-1/batches")
    assert request.headers["Authorization"] == "Bearer sinch-api-token"
    assert request.json() == {
        "from": "57675",
        "to": ["919876543210"],
        "body": "Your balance is Rs 120.00",
        "delivery_report": "per_recipient",
        "callback_url": f"https://sms.example.com/webhooks/sinch/status/?ref={REFERENCE}",
        "client_reference": str(REFERENCE),
    }
    assert result.provider_message_id == "01J0BATCHFROMSINCH00000001"
    assert result.exchanges[0].status_code == 201


@pytest.mark.parametrize(
    "reply,error,code",
    [
        (FakeResponse(500, {"code": "internal_error", "text": "try again"}), TransientSendError, "500"),
        (FakeResponse(503, "Service Unavailable"), TransientSendError, "503"),
        (FakeResponse(429, {"code": "too_many_requests"}, {"Retry-After": "7"}), TransientSendError, "429"),
        (FakeResponse(400, {"code": "syntax_invalid_parameter_format", "text": "to"}), PermanentSendError, "400"),
        (FakeResponse(401, {"code": "unauthorized"}), PermanentSendError, "401"),
        (FakeResponse(403, {"code": "forbidden"}), PermanentSendError, "403"),
        (FakeResponse(201, {"to": ["919876543210"]}), PermanentSendError, "no_id"),
    ],
)
def test_send_errors_are_sorted_into_transient_and_permanent(sinch, provider_server, reply, error, code):
    # given
    sinch.SINCH_API_BASE = provider_server.url
    provider_server.script = [reply]

    # when
    with pytest.raises(SendError) as raised:
        get_provider("sinch").send(outbound())

    # then
    assert type(raised.value) is error
    assert raised.value.code == code
    assert raised.value.exchanges, "the failed call is still logged"
    if code == "429":
        assert raised.value.retry_after == 7.0


def test_send_timeout_is_transient(sinch, provider_server):
    # given
    sinch.SINCH_API_BASE = provider_server.url
    sinch.GATEWAY_TIMEOUT_SECONDS = 0.2
    provider_server.script = [FakeResponse(201, {"id": "late"}, delay=1.0)]

    # when
    with pytest.raises(TransientSendError) as raised:
        get_provider("sinch").send(outbound())

    # then
    assert raised.value.code == "timeout"


def test_send_without_credentials_is_permanent(settings):
    settings.SINCH_SERVICE_PLAN_ID = ""
    with pytest.raises(PermanentSendError, match="SINCH_SERVICE_PLAN_ID"):
        get_provider("sinch").send(outbound())


@pytest.mark.django_db
def test_deliver_end_to_end_then_delivery_report(sinch, provider_server, post_signed):
    # given: a queued reply on a Sinch shortcode
    sinch.SINCH_API_BASE = provider_server.url
    provider_server.script = [FakeResponse(201, {"id": "01J0BATCHE2E000000000000001"})]
    message = OutboundMessageFactory(provider="sinch", phone="+919876543210", status=Status.QUEUED)

    # when
    outcome = message_deliver(message_id=message.id, final_attempt=True)

    # then
    assert outcome == "sent"
    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == ("sent", "01J0BATCHE2E000000000000001")
    sent = provider_server.requests[0].json()
    assert sent["client_reference"] == str(message.uuid)
    assert sent["callback_url"] == f"https://sms.example.com/webhooks/sinch/status/?ref={message.uuid}"

    # when: Sinch reports delivery to that callback URL
    report = json.loads(load_fixture("delivery", "sinch", "status_recipient_delivered.json"))
    report.update(batch_id="01J0BATCHE2E000000000000001", client_reference=str(message.uuid))
    response = post_signed(f"/webhooks/sinch/status/?ref={message.uuid}", json.dumps(report).encode())

    # then
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered"

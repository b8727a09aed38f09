"""
MSG91's own: its report formats (v2 form, v3 JSON, lists), keyword-only inbound, and
sendhttp against a local server. What every provider does: test_provider_contract.py.
"""

import json
from functools import partial
from urllib.parse import parse_qs

import pytest

from conftest import ROOT, FakeResponse, load_fixture
from delivery.deliver import message_deliver
from delivery.models import DeliveryReport, Message
from delivery.providers import get_provider
from delivery.providers.base import PermanentSendError, SendError, TransientSendError
from delivery.statuses import Status
from delivery.tests.factories import OutboundMessageFactory, outbound_sms

TOKEN = "msg91-token"
REQUEST_ID = "3763646c3058373530393138"  # requestId in the status fixtures
STATUS_DIR = ROOT / "delivery" / "tests" / "fixtures" / "msg91"
INBOUND_DIR = ROOT / "conversations" / "tests" / "fixtures" / "msg91"


@pytest.fixture
def msg91(settings):
    settings.MSG91_WEBHOOK_TOKEN = TOKEN
    settings.MSG91_AUTH_KEY = "msg91-auth-key"
    return settings


outbound = partial(
    outbound_sms,
    provider="msg91",
    reference="0b1f9d3c-5a57-4c2e-9d8e-3f7a2b1c4d5e",
    options={"sender": "MYBRND", "dlt_template_id": "1107161234567890123"},
)


def form(request) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(request.body.decode(), keep_blank_values=True).items()}


# Inbound ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_inbound_with_only_a_keyword_uses_it_as_the_text(msg91, post_webhook):
    # when
    response = post_webhook(
        f"/webhooks/msg91/inbound/?token={TOKEN}", "sender=919876543210&inNumber=57675&keyword=BAL", sign=False
    )

    # then
    assert response.status_code == 200
    assert Message.objects.get().body == "BAL"


# Delivery reports ------------------------------------------------------------------------


@pytest.mark.django_db
def test_failure_reason_is_kept(msg91, post_webhook):
    # given
    OutboundMessageFactory(provider="msg91", provider_message_id=REQUEST_ID, status=Status.SENT)

    # when
    post_webhook(
        f"/webhooks/msg91/status/?token={TOKEN}",
        load_fixture("delivery", "msg91", "status_v3_rejected_16.json"),
        sign=False,
    )

    # then
    assert Message.objects.get().error_message == "DLT template mismatch"


@pytest.mark.django_db
def test_v2_report_for_two_numbers_of_one_request_gives_two_reports(msg91, post_webhook):
    # given
    OutboundMessageFactory(provider="msg91", provider_message_id=REQUEST_ID, status=Status.SENT)

    # when
    response = post_webhook(
        f"/webhooks/msg91/status/?token={TOKEN}",
        load_fixture("delivery", "msg91", "status_v2_two_numbers.txt"),
        sign=False,
    )

    # then
    assert response.status_code == 200
    reports = {r.raw_payload["number"]: (r.status, r.raw_payload["senderId"]) for r in DeliveryReport.objects.all()}
    assert reports == {"919876543210": ("delivered", "MYBRND"), "919876543211": ("failed", "MYBRND")}


@pytest.mark.django_db
def test_v3_reports_may_arrive_as_a_list(msg91, post_webhook):
    # given
    one = json.loads(load_fixture("delivery", "msg91", "status_v3_delivered.json"))

    # when
    response = post_webhook(
        f"/webhooks/msg91/status/?token={TOKEN}", json.dumps([one, {**one, "number": "919876543211"}]), sign=False
    )

    # then
    assert response.status_code == 200
    assert DeliveryReport.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,field",
    [
        ("data=not-json", "data"),
        ("campaign=API", "data"),
        ('{"number": "919876543210", "status": "1"}', "requestId"),
        ('{"requestId": "abc", "report": "x"}', "report"),
    ],
)
def test_unreadable_reports_are_a_400_naming_the_field(msg91, post_webhook, body, field):
    response = post_webhook(f"/webhooks/msg91/status/?token={TOKEN}", body, sign=False)
    assert response.status_code == 400
    assert response.json()["field"] == field


# Sending ---------------------------------------------------------------------------------


def test_send_posts_the_documented_sendhttp_form(msg91, provider_server):
    # given
    msg91.MSG91_API_BASE = provider_server.url
    provider_server.script = [FakeResponse(200, {"message": "3763646c3058373530393999", "type": "success"})]

    # when
    result = get_provider("msg91").send(outbound())

    # then
    request = provider_server.requests[0]
    assert (request.method, request.path) == ("POST", "/api/sendhttp.php")
    assert form(request) == {
        "authkey": "msg91-auth-key",
        "mobiles": "919876543210",
        "message": "Your balance is Rs 120.00",
        "sender": "MYBRND",
        "route": "4",
        "country": "91",
        "response": "json",
        "DLT_TE_ID": "1107161234567890123",
    }
    assert result.provider_message_id == "3763646c3058373530393999"


def test_send_marks_unicode_and_reads_a_plain_text_request_id(msg91, provider_server):
    # given: a Hindi reply, and an account that answers in MSG91's default plain-text form
    msg91.MSG91_API_BASE = provider_server.url
    provider_server.script = [FakeResponse(200, "5134842646923e183d000075", {"Content-Type": "text/plain"})]

    # when
    result = get_provider("msg91").send(outbound(body="आपका बैलेंस ₹120 है", to="+14155550123", options={}))

    # then
    sent = form(provider_server.requests[0])
    assert (sent["unicode"], sent["country"], sent["mobiles"], sent["sender"]) == ("1", "0", "14155550123", "57675")
    assert "DLT_TE_ID" not in sent
    assert result.provider_message_id == "5134842646923e183d000075"


@pytest.mark.parametrize(
    "reply,error,code",
    [
        (
            FakeResponse(200, {"message": "Authentication failure", "type": "error", "code": "207"}),
            PermanentSendError,
            "207",
        ),
        (FakeResponse(200, {"message": "Invalid mobile number", "type": "error"}), PermanentSendError, "msg91_error"),
        (FakeResponse(200, {"message": "Internal error", "type": "error", "code": "601"}), TransientSendError, "601"),
        (FakeResponse(200, "Invalid sender ID", {"Content-Type": "text/plain"}), PermanentSendError, "no_id"),
        (FakeResponse(500, "Internal Server Error"), TransientSendError, "500"),
        (FakeResponse(429, "slow down", {"Retry-After": "3"}), TransientSendError, "429"),
        (FakeResponse(401, {"message": "Unauthorized", "type": "error"}), PermanentSendError, "401"),
    ],
)
def test_send_errors_are_sorted_into_transient_and_permanent(msg91, provider_server, reply, error, code):
    # given
    msg91.MSG91_API_BASE = provider_server.url
    provider_server.script = [reply]

    # when
    with pytest.raises(SendError) as raised:
        get_provider("msg91").send(outbound())

    # then
    assert type(raised.value) is error
    assert raised.value.code == code
    assert raised.value.exchanges


def test_send_timeout_is_transient(msg91, provider_server):
    msg91.MSG91_API_BASE = provider_server.url
    msg91.GATEWAY_TIMEOUT_SECONDS = 0.2
    provider_server.script = [FakeResponse(200, {"message": "x" * 24, "type": "success"}, delay=1.0)]
    with pytest.raises(TransientSendError) as raised:
        get_provider("msg91").send(outbound())
    assert raised.value.code == "timeout"


def test_send_without_auth_key_is_permanent(settings):
    settings.MSG91_AUTH_KEY = ""
    with pytest.raises(PermanentSendError, match="MSG91_AUTH_KEY"):
        get_provider("msg91").send(outbound())


@pytest.mark.django_db
def test_deliver_end_to_end_then_delivery_report(msg91, provider_server, post_webhook):
    # given: a queued reply on an MSG91 shortcode with a DLT template
    msg91.MSG91_API_BASE = provider_server.url
    provider_server.script = [FakeResponse(200, {"message": REQUEST_ID, "type": "success"})]
    message = OutboundMessageFactory(
        provider="msg91",
        phone="+919876543210",
        provider_options={"sender": "MYBRND", "dlt_template_id": "1107161234567890123"},
    )

    # when
    outcome = message_deliver(message_id=message.id, final_attempt=True)

    # then
    assert outcome == "sent"
    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == ("sent", REQUEST_ID)
    assert form(provider_server.requests[0])["DLT_TE_ID"] == "1107161234567890123"

    # when: MSG91's panel webhook reports delivery
    response = post_webhook(
        f"/webhooks/msg91/status/?token={TOKEN}",
        load_fixture("delivery", "msg91", "status_v2_delivered.txt"),
        sign=False,
    )

    # then
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered"

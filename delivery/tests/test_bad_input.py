"""
Bad input on the webhooks: never a 500, and what a signature covers is exactly what is
parsed. Also the DLT CSV import's unreadable files.
"""

import hashlib
import hmac
import json
import time

import pytest
from django.core.management import CommandError, call_command
from django.http import QueryDict
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3
from twilio.request_validator import RequestValidator

from conftest import WEBHOOK_SECRET, load_fixture
from delivery.models import DeliveryReport, Message
from delivery.providers.base import constant_time_equals, verify_hmac_sha256_hex
from delivery.statuses import Status
from delivery.tests.factories import OutboundMessageFactory
from templates.models import Template

BASE = "https://sms.example.com"
TOKEN = "bad-input-webhook-token"
TWILIO_TOKEN = "bad-input-twilio-token"
PLIVO_TOKEN = "bad-input-plivo-token"
PLIVO_NONCE = "12345678901234567890"
MSG91_REQUEST_ID = "3763646c3058373530393138"  # requestId of the MSG91 status fixtures
TWILIO_SID = "SM5f3e2b8c9d0a4b1c8e7f6a5b4c3d2e1f"
INBOUND = {"from": "+919876543210", "to": "57675", "body": "1"}


@pytest.fixture(autouse=True)
def provider_secrets(settings):
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_SHARED_KEY_SECRET = ""
    settings.PLIVO_AUTH_TOKEN = PLIVO_TOKEN
    settings.SINCH_WEBHOOK_SECRET = ""
    for slug in ("SINCH", "MSG91", "GUPSHUP", "TEXTLOCAL"):
        setattr(settings, f"{slug}_WEBHOOK_TOKEN", TOKEN)
    return settings


def stored_nothing() -> bool:
    return not Message.objects.exists() and not DeliveryReport.objects.exists()


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    return encode_multipart(BOUNDARY, fields), MULTIPART_CONTENT


def twilio_signature(path: str, params) -> str:
    return RequestValidator(TWILIO_TOKEN).compute_signature(BASE + path, params)


def plivo_headers(path: str, fields: dict[str, str]) -> dict[str, str]:
    signed = construct_post_url(BASE + path, {name: [value] for name, value in fields.items()}).decode()
    signature = get_signature_v3(PLIVO_TOKEN.encode(), signed, PLIVO_NONCE.encode()).decode()
    return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": PLIVO_NONCE}


# Deep nesting ------------------------------------------------------------------------------------

DEEP = "[" * 5000 + "]" * 5000
JSON_PATHS = [
    "/webhooks/generic/inbound/",
    "/webhooks/generic/status/",
    f"/webhooks/sinch/inbound/?token={TOKEN}",
    f"/webhooks/sinch/status/?token={TOKEN}",
    f"/webhooks/msg91/inbound/?token={TOKEN}",
    f"/webhooks/msg91/status/?token={TOKEN}",
    f"/webhooks/textlocal/inbound/?token={TOKEN}",
    "/sms-handler",
    "/sms-dlr",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", JSON_PATHS)
@pytest.mark.parametrize("where", ["value", "whole-body"])
def test_deeply_nested_json_is_a_400(post_webhook, path, where):
    # given: nesting far past what the recursive JSON parser survives
    body = DEEP if where == "whole-body" else json.dumps({**INBOUND, "type": "mo_text"})[:-1] + f', "x": {DEEP}}}'

    # when
    response = post_webhook(path, body, content_type="application/json")

    # then
    assert response.status_code == 400, response.content
    assert "nested" in response.json()["error"]
    assert stored_nothing()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/sms-handler", "/sms-dlr", "/webhooks/generic/inbound/"])
def test_deeply_nested_json_without_credentials_is_refused_not_a_500(post_webhook, path):
    # when
    response = post_webhook(path, DEEP, content_type="application/json", sign=False)

    # then
    assert response.status_code in (400, 403), response.content
    assert stored_nothing()


@pytest.mark.django_db
def test_msg91_v2_data_field_nested_deeply_is_a_400(post_webhook):
    # given: the v2 report is a JSON string inside a form field
    body = "data=" + "%5B" * 5000

    # when
    response = post_webhook(f"/webhooks/msg91/status/?token={TOKEN}", body, sign=False)

    # then
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "data"
    assert stored_nothing()


@pytest.mark.django_db
@pytest.mark.parametrize("depth,expected", [(32, 200), (33, 400)])
def test_nesting_up_to_the_limit_parses_and_beyond_it_is_refused(post_webhook, depth, expected):
    # given: a message whose extra field nests so that the whole body is `depth` levels deep
    nested = "[" * (depth - 1) + "]" * (depth - 1)
    body = json.dumps(INBOUND)[:-1] + f', "x": {nested}}}'

    # when
    response = post_webhook("/webhooks/generic/inbound/", body, content_type="application/json")

    # then
    assert response.status_code == expected, response.content
    assert Message.objects.exists() is (expected == 200)


# Content types --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,content_type",
    [
        (json.dumps(INBOUND), "text/plain"),
        (json.dumps(INBOUND), "application/octet-stream"),
        ("from=%2B919876543210&to=57675&body=1", "text/plain"),
        (json.dumps(INBOUND), ""),
    ],
    ids=["json-as-text", "json-as-octets", "form-as-text", "none"],
)
def test_a_body_is_read_only_as_its_declared_content_type(post_webhook, body, content_type):
    # when
    response = post_webhook("/webhooks/generic/inbound/", body, content_type=content_type)

    # then
    assert response.status_code == 400, response.content
    assert "Content-Type" in response.json()["error"]
    assert stored_nothing()


@pytest.mark.django_db
@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.sms+json", "text/json"])
def test_json_media_types_are_read_as_json(post_webhook, content_type):
    # when
    response = post_webhook("/webhooks/generic/inbound/", json.dumps(INBOUND), content_type=content_type)

    # then
    assert response.status_code == 200, response.content
    assert Message.objects.get().body == "1"


# multipart/form-data wherever form fields are taken ------------------------------------------------------


@pytest.mark.django_db
def test_generic_inbound_takes_multipart(post_webhook):
    # given
    body, content_type = multipart({"from": "+919876543210", "to": "57675", "body": "BAL", "id": "mp-1"})

    # when
    response = post_webhook("/webhooks/generic/inbound/", body, content_type=content_type)

    # then
    assert response.status_code == 200, response.content
    message = Message.objects.get()
    assert (message.body, message.provider_message_id) == ("BAL", "mp-1")


@pytest.mark.django_db
def test_generic_status_takes_multipart(post_webhook):
    # given
    message = OutboundMessageFactory(provider="generic", provider_message_id="gw-9", status=Status.SENT)
    body, content_type = multipart({"id": "gw-9", "status": "delivered"})

    # when
    response = post_webhook("/webhooks/generic/status/", body, content_type=content_type)

    # then
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == "delivered"


@pytest.mark.django_db
def test_twilio_inbound_takes_multipart_signed_over_its_fields(post_webhook):
    # given: the fields of the recorded form, sent as multipart and signed as Twilio signs fields
    path = "/webhooks/twilio/inbound/"
    fields = QueryDict(load_fixture("conversations", "twilio", "inbound_sms.txt")).dict()
    body, content_type = multipart(fields)

    # when
    response = post_webhook(
        path,
        body,
        content_type=content_type,
        sign=False,
        headers={"X-Twilio-Signature": twilio_signature(path, fields)},
    )

    # then
    assert response.status_code == 200, response.content
    assert Message.objects.get().body == fields["Body"]


@pytest.mark.django_db
def test_plivo_inbound_takes_multipart_signed_over_its_fields(post_webhook):
    # given
    path = "/webhooks/plivo/inbound/"
    fields = QueryDict(load_fixture("conversations", "plivo", "inbound_sms.txt")).dict()
    body, content_type = multipart(fields)

    # when
    response = post_webhook(path, body, content_type=content_type, sign=False, headers=plivo_headers(path, fields))

    # then
    assert response.status_code == 200, response.content
    assert Message.objects.get().body == fields["Text"]


@pytest.mark.django_db
def test_adapter_inbound_takes_multipart(post_webhook):
    # given
    fields = QueryDict(load_fixture("conversations", "textlocal", "inbound_keyword.txt")).dict()
    body, content_type = multipart(fields)

    # when
    response = post_webhook(f"/webhooks/textlocal/inbound/?token={TOKEN}", body, content_type=content_type, sign=False)

    # then
    assert response.status_code == 200, response.content
    assert Message.objects.get().body == fields["content"]


@pytest.mark.django_db
def test_msg91_v2_report_takes_multipart(post_webhook):
    # given
    message = OutboundMessageFactory(provider="msg91", provider_message_id=MSG91_REQUEST_ID, status=Status.SENT)
    fields = QueryDict(load_fixture("delivery", "msg91", "status_v2_delivered.txt")).dict()
    body, content_type = multipart(fields)

    # when
    response = post_webhook(f"/webhooks/msg91/status/?token={TOKEN}", body, content_type=content_type, sign=False)

    # then
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == "delivered"


BROKEN_MULTIPART = [
    (b'--x\r\nContent-Disposition: form-data; name="from"\r\n\r\n+91', "multipart/form-data"),
    (b"garbage", "multipart/form-data; boundary=\xff"),
    (b'--x\r\nContent-Disposition: form-data; name="from"\r\n\r\n+91', "multipart/form-data; boundary="),
]
MULTIPART_PATHS = [
    ("/webhooks/generic/inbound/", {}),
    ("/webhooks/twilio/inbound/", {"X-Twilio-Signature": "c2lnbmF0dXJl"}),
    ("/webhooks/twilio/status/", {"X-Twilio-Signature": "c2lnbmF0dXJl"}),
    ("/webhooks/plivo/inbound/", {"X-Plivo-Signature-V3": "c2ln", "X-Plivo-Signature-V3-Nonce": PLIVO_NONCE}),
    (f"/webhooks/textlocal/inbound/?token={TOKEN}", {}),
    (f"/webhooks/msg91/status/?token={TOKEN}", {}),
    ("/sms-handler", {"X-Twilio-Signature": "c2lnbmF0dXJl"}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("body,content_type", BROKEN_MULTIPART, ids=["no-boundary", "non-ascii-boundary", "empty"])
@pytest.mark.parametrize("path,headers", MULTIPART_PATHS)
def test_broken_multipart_is_a_400(post_webhook, path, headers, body, content_type):
    # when: the generic provider's own credential, the others' signature headers
    sign = path.startswith("/webhooks/generic/")
    response = post_webhook(path, body, content_type=content_type, headers=headers, sign=sign)

    # then
    assert response.status_code == 400, response.content
    assert "multipart" in response.json()["error"]
    assert stored_nothing()


# Wrong types ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("recipients", [5, True, 1.5, "919876543210", {"number": "919876543210"}])
def test_sinch_batch_report_with_recipients_not_a_list_is_a_400(post_webhook, recipients):
    # given: a full batch report whose first status names its recipients as something else than a list
    report = json.loads(load_fixture("delivery", "sinch", "status_batch_full.json"))
    report["statuses"][0]["recipients"] = recipients

    # when
    response = post_webhook(f"/webhooks/sinch/status/?token={TOKEN}", json.dumps(report), sign=False)

    # then
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "recipients"
    assert stored_nothing()


# Signature headers that are not ASCII ------------------------------------------------------------------

ODD_VALUES = ["é" * 64, "\ud800", "\u202e" + "0" * 63, "😀"]


def _now() -> str:
    return str(int(time.time()))


@pytest.mark.django_db
@pytest.mark.parametrize("value", ODD_VALUES, ids=["latin1", "surrogate", "rtl", "emoji"])
@pytest.mark.parametrize(
    "path,headers",
    [
        ("/webhooks/generic/inbound/", lambda v: {"X-Signature": v, "X-Signature-Timestamp": _now()}),
        ("/webhooks/generic/inbound/", lambda v: {"X-Webhook-Secret": v}),
        ("/webhooks/twilio/inbound/", lambda v: {"X-Twilio-Signature": v}),
        ("/webhooks/plivo/inbound/", lambda v: {"X-Plivo-Signature-V3": v, "X-Plivo-Signature-V3-Nonce": v}),
        (
            "/webhooks/sinch/inbound/",
            lambda v: {
                "x-sinch-webhook-signature": v,
                "x-sinch-webhook-signature-nonce": v,
                "x-sinch-webhook-signature-timestamp": _now(),
            },
        ),
    ],
    ids=["generic-hmac", "generic-secret", "twilio", "plivo", "sinch"],
)
def test_a_signature_header_that_is_not_ascii_is_a_403(post_webhook, provider_secrets, path, headers, value):
    # given
    provider_secrets.SINCH_WEBHOOK_SECRET = "bad-input-sinch-secret"
    body = "from=%2B919876543210&to=57675&body=1&Body=1&Text=1&MessageUUID=u&MessageSid=SM1&From=1&To=2"
    if path.startswith("/webhooks/sinch"):
        body = json.dumps({**INBOUND, "type": "mo_text"})

    # when
    response = post_webhook(path, body, sign=False, headers=headers(value))

    # then
    assert response.status_code == 403, response.content
    assert stored_nothing()


# Twilio: the parse reads exactly what the signature covers -------------------------------------------------


@pytest.mark.django_db
def test_twilio_multipart_preamble_cannot_change_the_signed_body(post_webhook):
    # given: a legitimately signed set of fields, sent as multipart with a urlencoded
    # preamble (ignored by a multipart parser) that says something else
    path = "/webhooks/twilio/inbound/"
    fields = QueryDict(load_fixture("conversations", "twilio", "inbound_sms.txt")).dict()
    signature = twilio_signature(path, fields)
    parts, content_type = multipart(fields)
    preamble = b"From=%2B919876543210&To=57675&MessageSid=SMforged&Body=STOP&x="
    body = preamble + b"\r\n" + parts

    # when
    response = post_webhook(
        path, body, content_type=content_type, sign=False, headers={"X-Twilio-Signature": signature}
    )

    # then: whatever is stored is what was signed
    assert response.status_code == 200, response.content
    message = Message.objects.get()
    assert (message.body, message.provider_message_id) == (fields["Body"], fields["MessageSid"])


@pytest.mark.django_db
@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", ""])
def test_twilio_json_signature_cannot_be_replayed_with_another_body_under_another_type(post_webhook, content_type):
    # given: a signed JSON report (its signature covers the URL only; the URL's bodySHA256 covers the body)
    message = OutboundMessageFactory(provider="twilio", provider_message_id=TWILIO_SID, status=Status.SENT)
    validator = RequestValidator(TWILIO_TOKEN)
    genuine = json.dumps({"MessageSid": TWILIO_SID, "MessageStatus": "undelivered"})
    path = f"/webhooks/twilio/status/?bodySHA256={validator.compute_hash(genuine)}"
    signature = validator.compute_signature(BASE + path, {})

    # when: the signature is replayed with another JSON body declared as something else
    forged = json.dumps({"MessageSid": TWILIO_SID, "MessageStatus": "delivered"})
    response = post_webhook(
        path, forged, content_type=content_type, sign=False, headers={"X-Twilio-Signature": signature}
    )

    # then
    assert response.status_code in (400, 403), response.content
    message.refresh_from_db()
    assert message.status == "sent"
    assert not DeliveryReport.objects.exists()


@pytest.mark.django_db
def test_twilio_form_signature_over_a_json_looking_form_parses_the_form(post_webhook):
    # given: a form whose bytes also read as JSON; Twilio signed its form fields
    path = "/webhooks/twilio/inbound/"
    json_text = json.dumps({"From": "+919876543210", "To": "57675", "Body": "STOP", "MessageSid": "SMjson"})
    body = json_text.encode() + b"&" + load_fixture("conversations", "twilio", "inbound_sms.txt")
    signature = twilio_signature(path, QueryDict(body))

    # when
    response = post_webhook(
        path,
        body,
        content_type="application/x-www-form-urlencoded",
        sign=False,
        headers={"X-Twilio-Signature": signature},
    )

    # then: the form fields, which the signature covers, are what is stored
    assert response.status_code == 200, response.content
    assert Message.objects.get().body == "2"


# The DLT CSV import --------------------------------------------------------------------------------------

CSV_TITLES = "Template ID,Template Name,Template Message,Sender ID,Template Type,Status,PE ID,Entity Name,Comments\n"
CSV_ROW = (
    '1107161000000000001,OTP,"Your OTP is {#numeric#}. - ACME",ACMEBK,Transactional,Approved,'
    "1201159100000000042,ACME Bank,"
)


@pytest.mark.django_db
def test_dlt_import_reads_a_field_longer_than_the_csv_default_limit(tmp_path):
    # given: a portal comment column of 200,000 characters (the csv module's default limit is 131,072)
    export = tmp_path / "export.csv"
    export.write_text(CSV_TITLES + CSV_ROW + "x" * 200_000 + "\n", encoding="utf-8")

    # when
    call_command("dlt_import", str(export))

    # then
    assert Template.objects.filter(dlt_template_id="1107161000000000001").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tail",
    ["x" * 1_100_000 + "\n", '"' + "x" * 1_100_000 + "\n"],
    ids=["over-long-field", "quote-never-closed"],
)
def test_dlt_import_reports_an_over_long_field_instead_of_crashing(tmp_path, tail):
    # given
    export = tmp_path / "export.csv"
    export.write_text(CSV_TITLES + CSV_ROW + tail, encoding="utf-8")

    # when
    with pytest.raises(CommandError) as raised:
        call_command("dlt_import", str(export))

    # then: the line and the reason, and nothing half-imported
    assert str(raised.value).startswith("Line 2: the file is not readable CSV")
    assert "field larger than field limit" in str(raised.value)
    assert not Template.objects.exists()


def test_signature_helpers_compare_bytes_and_refuse_what_has_no_utf8():
    # given
    body = b'{"a": 1}'
    good = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()

    # then
    assert verify_hmac_sha256_hex(WEBHOOK_SECRET, body, good.upper())
    assert not verify_hmac_sha256_hex(WEBHOOK_SECRET, body, "é" * 64)
    assert not verify_hmac_sha256_hex(WEBHOOK_SECRET, body, "\ud800")
    assert not constant_time_equals(WEBHOOK_SECRET, "\udcff")
    assert constant_time_equals("sécret", "sécret")

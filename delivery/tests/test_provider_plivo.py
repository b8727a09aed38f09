"""
Plivo provider: V3 signatures, and V2 only when allowed (docs/PROVIDERS.md, Plivo: signatures),
webhooks through the real URLs, and sends against a local HTTP server standing in for api.plivo.com.
"""

import base64
import hashlib
import hmac
import json
import socket
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from django.http import QueryDict
from django.test import RequestFactory
from freezegun import freeze_time
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3

from conftest import FakeResponse, load_fixture
from conversations.tests.factories import BALANCE, service_shortcode
from delivery.deliver import message_deliver
from delivery.models import DeliveryReport, Message, Suppression
from delivery.providers.base import PermanentSendError, SendError, TransientSendError, webhook_request_from
from delivery.providers.plivo import PlivoProvider, signature_v2_valid, signature_v3_valid
from delivery.redaction import MASK
from delivery.statuses import Direction, Status
from delivery.tests.factories import OutboundMessageFactory, basic_auth, outbound_sms
from templates.models import Template

AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
AUTH_TOKEN = "test-plivo-auth-token"
BASE = "https://sms.example.com"
INBOUND = "/webhooks/plivo/inbound/"
STATUS = "/webhooks/plivo/status/"
NONCE = "05429567804466091622"
OUTBOUND_UUID = "db3ce55a-7f1d-11e1-8ea7-1231380bc196"  # the MessageUUID of every status fixture
ACK = "<Response></Response>"

provider = PlivoProvider()


@pytest.fixture(autouse=True)
def plivo_settings(settings):
    settings.PLIVO_AUTH_ID = AUTH_ID
    settings.PLIVO_AUTH_TOKEN = AUTH_TOKEN
    settings.PLIVO_API_BASE = ""
    settings.GATEWAY_TIMEOUT_SECONDS = 5.0
    return settings


def v3_signature(url: str, body: bytes, nonce: str = NONCE, token: str = AUTH_TOKEN) -> str:
    """Sign a form POST the way Plivo does, with the SDK's own V3 functions."""
    params = dict(QueryDict(body).lists())
    signed = construct_post_url(url, params).decode("utf-8")
    return get_signature_v3(token.encode(), signed, nonce.encode()).decode()


def v2_signature(url: str, nonce: str = NONCE, token: str = AUTH_TOKEN) -> str:
    """V2, computed independently of the SDK: HMAC-SHA256 of the URL without its query, plus the nonce."""
    base = url.split("?", 1)[0]
    return base64.b64encode(hmac.new(token.encode(), (base + nonce).encode(), hashlib.sha256).digest()).decode()


def v3_headers(signature: str, nonce: str = NONCE, header: str = "X-Plivo-Signature-V3") -> dict[str, str]:
    return {header: signature, "X-Plivo-Signature-V3-Nonce": nonce}


def post_signed(post_webhook, path: str, body: bytes, *, signed_url: str | None = None, **kwargs):
    signature = v3_signature(signed_url or BASE + path, body, **kwargs)
    return post_webhook(path, body, sign=False, headers=v3_headers(signature, kwargs.get("nonce", NONCE)))


# Signatures as pure functions: docs/PROVIDERS.md, Plivo: signatures ----------------------------------

V3_URL = "https://example.com/sms/status/?ref=abc"
V3_PARAMS = {
    "From": ["MYBRND"],
    "MessageUUID": ["db3ce55a-7f1d-11e1-8ea7-1231380bc196"],
    "Status": ["delivered"],
    "To": ["919999999999"],
}
V3_SIGNATURE = "491ywcIEs46ekyZEmaPza2KzYKW3elgMb7UmA5rMFcY="


@pytest.mark.parametrize(
    "signature",
    [V3_SIGNATURE, f"bm90IGl0IGVpdGhlcg==,{V3_SIGNATURE}"],
    ids=["one", "several-comma-separated"],
)
def test_v3_vector_validates(signature):
    # given: the V3 vector of docs/PROVIDERS.md, Plivo: signatures

    # when
    valid = signature_v3_valid("my_auth_token", "POST", V3_URL, NONCE, signature, V3_PARAMS)

    # then
    assert valid


@pytest.mark.parametrize(
    "token,url,nonce,params,signature",
    [
        ("my_other_token", V3_URL, NONCE, V3_PARAMS, V3_SIGNATURE),
        ("my_auth_token", V3_URL.replace("https://", "http://"), NONCE, V3_PARAMS, V3_SIGNATURE),
        ("my_auth_token", "https://example.com/sms/status/?ref=abd", NONCE, V3_PARAMS, V3_SIGNATURE),
        ("my_auth_token", V3_URL, "05429567804466091623", V3_PARAMS, V3_SIGNATURE),
        ("my_auth_token", V3_URL, NONCE, {**V3_PARAMS, "Status": ["undelivered"]}, V3_SIGNATURE),
        # The SDK splits on "," exactly: a space after the comma spoils the signature after it.
        ("my_auth_token", V3_URL, NONCE, V3_PARAMS, f"bm90IGl0IGVpdGhlcg==, {V3_SIGNATURE}"),
        ("", V3_URL, NONCE, V3_PARAMS, V3_SIGNATURE),
        ("my_auth_token", V3_URL, "", V3_PARAMS, V3_SIGNATURE),
        ("my_auth_token", "not a url", NONCE, V3_PARAMS, V3_SIGNATURE),
    ],
    ids=["token", "scheme", "query", "nonce", "param", "spaced-list", "no-token", "no-nonce", "bad-url"],
)
def test_v3_vector_fails_when_anything_changes(token, url, nonce, params, signature):
    # given: one detail of the vector changed

    # when
    valid = signature_v3_valid(token, "POST", url, nonce, signature, params)

    # then
    assert not valid


@pytest.mark.parametrize(
    "token,url,nonce,expected",
    [
        ("my_auth_token", "https://answer.url", "12345", True),
        # V2 covers neither the query nor the body, only the URL without its query.
        ("my_auth_token", "https://answer.url?anything=1", "12345", True),
        ("my_auth_token", "https://answer.url", "12346", False),
        ("my_auth_token", "http://answer.url", "12345", False),
        ("my_other_token", "https://answer.url", "12345", False),
    ],
    ids=["vector", "query-not-covered", "nonce", "scheme", "token"],
)
def test_v2_vector(token, url, nonce, expected):
    # given: plivo-python's V2 vector

    # when
    valid = signature_v2_valid(token, url, nonce, "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=")

    # then
    assert valid is expected


# Inbound webhook -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fixture,uuid,body",
    [
        ("inbound_sms.txt", "a8d6f2b0-2c7e-11f1-9d3a-0242ac110004", "2"),
        ("inbound_unicode.txt", "c1e7a9d2-2c7e-11f1-9d3a-0242ac110004", "बैलेंस 2"),
    ],
)
def test_signed_inbound_is_stored_and_handled(post_webhook, django_capture_on_commit_callbacks, fixture, uuid, body):
    # given: shortcode 57675 and an inbound SMS signed by the SDK (numbers without "+")
    service_shortcode()
    payload = load_fixture("conversations", "plivo", fixture)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed(post_webhook, INBOUND, payload)

    # then: empty Plivo XML, and the message is stored and handled
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/xml"
    assert response.content.decode() == ACK
    message = Message.objects.get(direction=Direction.INBOUND)
    assert message.provider == "plivo"
    assert message.provider_message_id == uuid
    assert message.phone == "+919876543210"
    assert message.shortcode == "57675"
    assert message.body == body
    assert message.status == "handled"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers_for",
    [
        # The main account's signature, for a PLIVO_AUTH_TOKEN that is the main account's.
        lambda good: v3_headers(good, header="X-Plivo-Signature-Ma-V3"),
        # A subaccount's number: the plain header holds our token's signature, -Ma- another's.
        lambda good: {**v3_headers(good), "X-Plivo-Signature-Ma-V3": "c29tZW9uZSBlbHNlJ3M="},
        # Several signatures in one header (key rotation): one match is enough.
        lambda good: v3_headers(f"c29tZW9uZSBlbHNlJ3M=,{good}"),
    ],
    ids=["ma-v3", "plain-v3-beside-ma", "several-v3"],
)
def test_inbound_signature_variants_are_accepted(post_webhook, headers_for):
    # given
    payload = load_fixture("conversations", "plivo", "inbound_sms.txt")
    headers = headers_for(v3_signature(BASE + INBOUND, payload))

    # when
    response = post_webhook(INBOUND, payload, sign=False, headers=headers)

    # then
    assert response.status_code == 200, response.content
    assert Message.objects.filter(direction=Direction.INBOUND, provider="plivo").count() == 1


@pytest.mark.django_db
def test_repeated_form_fields_are_signed_as_plivo_signs_them(post_webhook):
    # given: a body with a repeated field, signed over every value (docs/PROVIDERS.md, Plivo: signatures)
    payload = (
        load_fixture("conversations", "plivo", "inbound_sms.txt") + b"&Media1=https%3A%2F%2Fa&Media1=https%3A%2F%2Fb"
    )

    # when
    response = post_signed(post_webhook, INBOUND, payload)

    # then
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_mms_inbound_text_comes_in_body(post_webhook):
    # given: an MMS, whose text Plivo sends as `Body` rather than `Text` (an edge case: no fixture)
    fields = QueryDict(load_fixture("conversations", "plivo", "inbound_sms.txt"), mutable=True)
    fields["Body"] = fields.pop("Text")[0]
    fields.update({"Type": "mms", "MediaCount": "0"})
    payload = fields.urlencode().encode()

    # when
    response = post_signed(post_webhook, INBOUND, payload)

    # then
    assert response.status_code == 200, response.content
    assert Message.objects.get(direction=Direction.INBOUND).body == "2"


def _tampered(payload: bytes) -> bytes:
    return payload.replace(b"Text=2", b"Text=3")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "signed_url,change_body,signed_nonce,sent_nonce,token",
    [
        (f"{BASE}/webhooks/plivo/status/", False, NONCE, NONCE, AUTH_TOKEN),  # another path
        (f"http://sms.example.com{INBOUND}", False, NONCE, NONCE, AUTH_TOKEN),  # the scheme a TLS proxy hides
        (f"https://evil.example.com{INBOUND}", False, NONCE, NONCE, AUTH_TOKEN),  # another host
        (f"{BASE}{INBOUND}?ref=x", False, NONCE, NONCE, AUTH_TOKEN),  # another query
        (f"{BASE}{INBOUND}", True, NONCE, NONCE, AUTH_TOKEN),  # a changed body byte
        (f"{BASE}{INBOUND}", False, NONCE, "15429567804466091622", AUTH_TOKEN),  # another nonce
        (f"{BASE}{INBOUND}", False, NONCE, NONCE, "another-accounts-token"),
    ],
    ids=["path", "scheme", "host", "query", "body", "nonce", "token"],
)
def test_inbound_with_a_changed_detail_is_refused(
    post_webhook, signed_url, change_body, signed_nonce, sent_nonce, token
):
    # given
    payload = load_fixture("conversations", "plivo", "inbound_sms.txt")
    signature = v3_signature(signed_url, payload, signed_nonce, token)

    # when
    sent = _tampered(payload) if change_body else payload
    response = post_webhook(INBOUND, sent, sign=False, headers=v3_headers(signature, sent_nonce))

    # then
    assert response.status_code == 403
    assert not Message.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Plivo-Signature-V3-Nonce": NONCE},
        {"X-Plivo-Signature-V3": "c29tZW9uZSBlbHNlJ3M="},
        {"X-Plivo-Signature-V2": v2_signature(BASE + INBOUND)},
        # A bad V3 signature is not rescued by a good V2 one, which does not cover the body.
        {
            **v3_headers("c29tZW9uZSBlbHNlJ3M="),
            "X-Plivo-Signature-V2": v2_signature(BASE + INBOUND),
            "X-Plivo-Signature-V2-Nonce": NONCE,
        },
    ],
    ids=["none", "nonce-only", "v3-without-nonce", "v2-without-nonce", "no-downgrade-to-v2"],
)
def test_inbound_with_missing_or_wrong_headers_is_refused(post_webhook, headers):
    # given
    payload = load_fixture("conversations", "plivo", "inbound_sms.txt")

    # when
    response = post_webhook(INBOUND, payload, sign=False, headers=headers)

    # then
    assert response.status_code == 403
    assert not Message.objects.exists()


# V2 signatures: refused unless PLIVO_ALLOW_SIGNATURE_V2, and then each nonce once ------------------


def v2_headers(url: str, nonce: str = NONCE, header: str = "X-Plivo-Signature-V2") -> dict[str, str]:
    return {header: v2_signature(url, nonce), "X-Plivo-Signature-V2-Nonce": nonce}


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["X-Plivo-Signature-V2", "X-Plivo-Signature-Ma-V2"])
@pytest.mark.parametrize("allow_v2,expected", [(False, 403), (True, 200)], ids=["default", "allowed"])
def test_v2_signature_is_accepted_only_when_allowed(post_webhook, plivo_settings, header, allow_v2, expected):
    # given: a request with only the V2 headers of the Messaging documents, correctly signed
    plivo_settings.PLIVO_ALLOW_SIGNATURE_V2 = allow_v2
    payload = load_fixture("conversations", "plivo", "inbound_sms.txt")

    # when
    response = post_webhook(INBOUND, payload, sign=False, headers=v2_headers(BASE + INBOUND, header=header))

    # then
    assert response.status_code == expected, response.content
    assert Message.objects.filter(direction=Direction.INBOUND, provider="plivo").exists() is (expected == 200)
    if expected == 403:
        assert "X-Plivo-Signature-V3 is required" in response.json()["error"]


@pytest.mark.django_db
@pytest.mark.parametrize("allow_v2", [False, True], ids=["default", "allowed"])
def test_captured_v2_signature_cannot_carry_a_forged_stop(
    post_webhook, plivo_api, plivo_settings, django_capture_on_commit_callbacks, allow_v2
):
    # given: a DLT-bound shortcode on Plivo, and the V2 headers of a genuine inbound SMS ("2"),
    # which sign only the URL and the nonce; where V2 is allowed the genuine one arrives first
    plivo_settings.PLIVO_ALLOW_SIGNATURE_V2 = allow_v2
    service_shortcode(dlt=True, provider="plivo")
    captured = v2_headers(BASE + INBOUND)
    if allow_v2:
        with django_capture_on_commit_callbacks(execute=True):
            genuine = post_webhook(
                INBOUND, load_fixture("conversations", "plivo", "inbound_sms.txt"), sign=False, headers=captured
            )
        assert genuine.status_code == 200, genuine.content
    forged = "From=919812345678&MessageUUID=f0f0f0f0-2c7e-11f1-9d3a-0242ac110004&Text=STOP&To=57675&Type=sms"

    # when: the captured headers carry a STOP from another subscriber
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(INBOUND, forged, sign=False, headers=captured)

    # then: refused; the number is not opted out and gets no confirmation
    assert response.status_code == 403
    assert not Suppression.objects.exists()
    assert not Message.objects.filter(phone="+919812345678").exists()
    # and: Plivo was asked for the genuine SMS's reply only
    assert [request.json()["dst"] for request in plivo_api.requests] == (["919876543210"] if allow_v2 else [])


@pytest.mark.django_db
@pytest.mark.parametrize("allow_v2", [False, True], ids=["default", "allowed"])
def test_captured_v2_signature_cannot_fail_another_message(post_webhook, plivo_settings, allow_v2):
    # given: a message Plivo accepted, and the V2 headers of a genuine report on another one
    plivo_settings.PLIVO_ALLOW_SIGNATURE_V2 = allow_v2
    victim = OutboundMessageFactory(provider="plivo", provider_message_id=OUTBOUND_UUID, status=Status.SENT)
    captured = v2_headers(BASE + STATUS)
    if allow_v2:
        genuine = load_fixture("delivery", "plivo", "status_delivered.txt").replace(
            OUTBOUND_UUID.encode(), b"0a0a0a0a-7f1d-11e1-8ea7-1231380bc196"
        )
        assert post_webhook(STATUS, genuine, sign=False, headers=captured).status_code == 200

    # when: the captured headers carry a `failed` report on the victim
    response = post_webhook(
        STATUS, load_fixture("delivery", "plivo", "status_failed.txt"), sign=False, headers=captured
    )

    # then
    assert response.status_code == 403
    victim.refresh_from_db()
    assert victim.status == "sent"
    assert not DeliveryReport.objects.filter(message=victim).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("later", [timedelta(0), timedelta(hours=23, minutes=59)], ids=["at-once", "next-day"])
def test_allowed_v2_nonce_is_refused_the_second_time_until_its_ttl(post_webhook, plivo_settings, later):
    # given: V2 allowed and a nonce already used
    plivo_settings.PLIVO_ALLOW_SIGNATURE_V2 = True
    plivo_settings.PLIVO_V2_NONCE_TTL_SECONDS = 24 * 3600
    payload = load_fixture("conversations", "plivo", "inbound_sms.txt")
    assert post_webhook(INBOUND, payload, sign=False, headers=v2_headers(BASE + INBOUND)).status_code == 200

    # when: the identical request again, `later`
    with freeze_time(datetime.now(UTC) + later):
        replay = post_webhook(INBOUND, payload, sign=False, headers=v2_headers(BASE + INBOUND))

    # then
    assert replay.status_code == 403
    assert "already used" in replay.json()["error"]
    assert Message.objects.filter(direction=Direction.INBOUND).count() == 1


@pytest.mark.django_db
def test_allowed_v2_report_cannot_choose_its_message_by_the_unsigned_query(post_webhook, plivo_settings):
    # given: V2 allowed (it signs the URL without its query); the report is on one message,
    # and `?ref=` names another Plivo message
    plivo_settings.PLIVO_ALLOW_SIGNATURE_V2 = True
    reported = OutboundMessageFactory(provider="plivo", provider_message_id=OUTBOUND_UUID, status=Status.SENT)
    other = OutboundMessageFactory(provider="plivo", status=Status.SENT)
    path = f"{STATUS}?ref={other.uuid}"

    # when
    response = post_webhook(
        path, load_fixture("delivery", "plivo", "status_failed.txt"), sign=False, headers=v2_headers(BASE + path)
    )

    # then: the report moves the message it names by MessageUUID, never the one in the query
    assert response.status_code == 200, response.content
    reported.refresh_from_db()
    other.refresh_from_db()
    assert (reported.status, other.status) == ("failed", "sent")


@pytest.mark.django_db
@pytest.mark.parametrize("debug,expected", [(False, 403), (True, 200)])
def test_unset_auth_token_fails_closed_unless_debug(post_webhook, plivo_settings, debug, expected):
    # given: no PLIVO_AUTH_TOKEN; a request signed with what the token used to be
    plivo_settings.PLIVO_AUTH_TOKEN = ""
    plivo_settings.DEBUG = debug
    payload = load_fixture("conversations", "plivo", "inbound_sms.txt")

    # when
    response = post_signed(post_webhook, INBOUND, payload)

    # then
    assert response.status_code == expected
    assert Message.objects.filter(direction=Direction.INBOUND).exists() == (expected == 200)


# Status callbacks ----------------------------------------------------------------------------------

# fixture -> (Plivo's word, our report status, the message's status afterwards from `sent`, error code)
STATUS_CASES = [
    ("status_queued.txt", "queued", "queued", "sent", ""),
    ("status_sent.txt", "sent", "sent", "sent", ""),
    ("status_delivered.txt", "delivered", "delivered", "delivered", ""),
    ("status_read.txt", "read", "delivered", "delivered", ""),
    ("status_undelivered.txt", "undelivered", "undelivered", "undelivered", "80"),
    ("status_failed.txt", "failed", "failed", "failed", "900"),
    ("status_rejected.txt", "rejected", "rejected", "rejected", ""),
    ("status_received.txt", "received", "queued", "sent", ""),
    ("status_unknown.txt", "expired", "", "sent", ""),
]


@pytest.mark.django_db
@pytest.mark.parametrize("fixture,word,report_status,message_status,error_code", STATUS_CASES)
def test_signed_status_callback_is_recorded(post_webhook, fixture, word, report_status, message_status, error_code):
    # given: a reply Plivo accepted
    message = OutboundMessageFactory(provider="plivo", provider_message_id=OUTBOUND_UUID, status=Status.SENT)

    # when
    response = post_signed(post_webhook, STATUS, load_fixture("delivery", "plivo", fixture))

    # then
    assert response.status_code == 200, response.content
    assert response.content.decode() == ACK
    report = DeliveryReport.objects.get()
    assert (report.message_id, report.provider, report.provider_status) == (message.id, "plivo", word)
    assert report.status == report_status
    assert report.error_code == error_code
    message.refresh_from_db()
    assert message.status == message_status


@pytest.mark.django_db
def test_status_callback_finds_the_message_by_ref_and_signs_the_query(post_webhook):
    # given: the send has not stored Plivo's UUID yet; the callback URL carries our ref
    message = OutboundMessageFactory(provider="plivo", status=Status.SENDING)
    path = f"{STATUS}?ref={message.uuid}"
    payload = load_fixture("delivery", "plivo", "status_delivered.txt")

    # when: once with the query signed, once with a signature made without it
    forged = post_webhook(path, payload, sign=False, headers=v3_headers(v3_signature(BASE + STATUS, payload)))
    response = post_signed(post_webhook, path, payload)

    # then
    assert forged.status_code == 403
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == "delivered"
    assert DeliveryReport.objects.get().reference == message.uuid


PART_UUID = "e5a7c1d0-7f1d-11e1-8ea7-1231380bc196"


def part_report(fixture: str = "status_delivered.txt") -> bytes:
    """A report on the second part of a long message: the part's own MessageUUID, the send's as its parent."""
    body = load_fixture("delivery", "plivo", fixture).decode()
    body = body.replace(f"&MessageUUID={OUTBOUND_UUID}", f"&MessageUUID={PART_UUID}").replace("1+of+1", "2+of+2")
    assert f"ParentMessageUUID={OUTBOUND_UUID}" in body
    return body.encode()


@pytest.mark.django_db
def test_a_part_report_without_ref_is_matched_by_its_parent_message_uuid(post_webhook):
    # given: a reply Plivo accepted under the UUID its send answered with
    message = OutboundMessageFactory(provider="plivo", provider_message_id=OUTBOUND_UUID, status=Status.SENT)

    # when: a part of it is reported, with no ref of ours
    response = post_signed(post_webhook, STATUS, part_report())

    # then
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == "delivered"
    report = DeliveryReport.objects.get()
    assert (report.message_id, report.provider_message_id, report.applied) == (message.id, OUTBOUND_UUID, True)
    assert report.raw_payload["MessageUUID"] == PART_UUID


@pytest.mark.django_db
def test_a_part_report_before_the_send_recorded_the_uuid_is_applied_by_the_send(post_webhook, plivo_api):
    # given: a part's report arrives while the reply is still queued
    message = OutboundMessageFactory(provider="plivo", status=Status.QUEUED)
    response = post_signed(post_webhook, STATUS, part_report())
    assert response.status_code == 200, response.content

    # when: the send records the UUID Plivo answered with
    message_deliver(message_id=message.id, final_attempt=True)

    # then
    message.refresh_from_db()
    assert (message.provider_message_id, message.status) == (OUTBOUND_UUID, "delivered")
    assert DeliveryReport.objects.get().message_id == message.id


def test_status_map_words_are_ours():
    # then
    assert set(PlivoProvider.STATUS_MAP.values()) <= set(Status)
    assert {"queued", "sent", "delivered", "undelivered", "failed", "rejected", "read"} <= set(PlivoProvider.STATUS_MAP)


# Slug-less webhooks (/sms-handler, /sms-dlr) ----------------------------------------------------------


@pytest.mark.parametrize(
    "headers,body,claimed",
    [
        ({"HTTP_X_PLIVO_SIGNATURE_V3": "anything"}, "from=919876543210&to=57675&body=2", True),
        ({"HTTP_X_PLIVO_SIGNATURE_V2": "anything"}, "from=919876543210&to=57675&body=2", True),
        # Plivo's payload shape without its signature is not Plivo's to authenticate.
        ({}, "From=919876543210&To=57675&Text=2&MessageUUID=a8d6f2b0", False),
        ({}, "from=%2B919876543210&to=57675&body=2&id=gen-1", False),
    ],
    ids=["v3-header", "v2-header", "message-uuid", "generic"],
)
def test_claims(headers, body, claimed):
    # given
    webhook = webhook_request_from(
        RequestFactory().post("/sms-dlr", body, content_type="application/x-www-form-urlencoded", **headers)
    )

    # then
    assert provider.claims(webhook) is claimed


# Sending through the API ------------------------------------------------------------------------------


outbound = partial(outbound_sms, provider="plivo")


def queued() -> FakeResponse:
    return FakeResponse(202, json.loads(load_fixture("delivery", "plivo", "api_message_queued.json")))


@pytest.fixture
def plivo_api(provider_server, plivo_settings):
    plivo_settings.PLIVO_API_BASE = provider_server.url
    provider_server.script = [queued()]
    return provider_server


DLT = {
    "dlt_entity_id": "1201159543060917386",
    "dlt_template_id": "1207161234567890123",
    "dlt_category": "service_implicit",
}


@pytest.mark.parametrize(
    "options,dlt_fields",
    [
        ({}, {}),
        (
            DLT,
            {
                "dlt_entity_id": "1201159543060917386",
                "dlt_template_id": "1207161234567890123",
                "dlt_template_category": "service_implicit",
            },
        ),
    ],
    ids=["plain", "india-dlt"],
)
def test_send_makes_the_documented_request(plivo_api, options, dlt_fields):
    # given
    sms = outbound(options=options)

    # when
    result = provider.send(sms)

    # then: one JSON POST to the account's Message resource, with Basic auth
    (request,) = plivo_api.requests
    assert request.method == "POST"
    assert request.path == f"/v1/Account/{AUTH_ID}/Message/"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == basic_auth(AUTH_ID, AUTH_TOKEN)
    assert request.json() == {
        "src": "57675",
        "dst": "919876543210",  # digits with the country code, as Plivo documents
        "text": "Your balance is Rs 120.00",
        "url": sms.callback_url,
        "method": "POST",
        # The SDK's own defaults, sent as it always sends them:
        "type": "sms",
        "log": "true",
        "trackable": False,
        **dlt_fields,
    }
    # and: the first UUID is ours to keep, and the call is recorded for the channel log
    assert result.provider_message_id == OUTBOUND_UUID
    (exchange,) = result.exchanges
    assert (exchange.method, exchange.status_code) == ("POST", 202)
    # The auth ID is one of Plivo's secrets: masked as the call is recorded, Basic auth too.
    assert exchange.url == f"{plivo_api.url}/v1/Account/{MASK}/Message/"
    assert exchange.request_headers["Authorization"] == MASK
    assert OUTBOUND_UUID in exchange.response_body


@pytest.mark.parametrize(
    "status,body,headers,error,code,retry_after",
    [
        (400, "api_error_400.json", {}, PermanentSendError, "400", None),
        (401, "api_error_401.json", {}, PermanentSendError, "401", None),
        (
            429,
            {"api_id": "5c4d9e6f", "error": "too many requests"},
            {"Retry-After": "12"},
            TransientSendError,
            "429",
            12.0,
        ),
        (500, {"api_id": "6d5eaf70", "error": "internal error"}, {}, TransientSendError, "500", None),
        (502, "<html>Bad Gateway</html>", {"Content-Type": "text/html"}, TransientSendError, "502", None),
    ],
    ids=["400", "401", "429", "500", "502"],
)
def test_send_sorts_api_errors(plivo_api, status, body, headers, error, code, retry_after):
    # given
    if isinstance(body, str) and body.endswith(".json"):
        body = json.loads(load_fixture("delivery", "plivo", body))
    plivo_api.script = [FakeResponse(status, body, headers)]

    # when
    with pytest.raises(SendError) as raised:
        provider.send(outbound())

    # then
    assert type(raised.value) is error
    assert raised.value.code == code
    assert raised.value.retry_after == retry_after
    (exchange,) = raised.value.exchanges
    assert exchange.status_code == status


def test_send_accepted_without_a_uuid_is_not_retried(plivo_api):
    # given: a 202 without message_uuid (an edge case: no fixture)
    plivo_api.script = [FakeResponse(202, {"api_id": "7e6fb081", "message": "message(s) queued"})]

    # when
    with pytest.raises(PermanentSendError) as raised:
        provider.send(outbound())

    # then: permanent, because a retry could send the message twice
    assert raised.value.code == "no_id"
    assert raised.value.exchanges[0].status_code == 202


def test_send_refused_by_the_sdk_before_any_call_is_permanent(plivo_api):
    # given: the SDK will not send to the sender's own number
    sms = outbound(sender="919876543210")

    # when
    with pytest.raises(PermanentSendError) as raised:
        provider.send(sms)

    # then
    assert raised.value.code == "invalid_request"
    assert raised.value.exchanges == ()
    assert plivo_api.requests == []


def test_send_timeout_is_transient(plivo_api, plivo_settings):
    # given: an API slower than our timeout
    plivo_settings.GATEWAY_TIMEOUT_SECONDS = 0.2
    plivo_api.script = [FakeResponse(202, {}, delay=1.0)]

    # when
    with pytest.raises(TransientSendError) as raised:
        provider.send(outbound())

    # then
    assert raised.value.code == "timeout"
    (exchange,) = raised.value.exchanges
    assert exchange.status_code is None
    assert "Timeout" in exchange.error


def test_send_connection_refused_is_transient(plivo_settings):
    # given: nothing listens on the API's port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    plivo_settings.PLIVO_API_BASE = f"http://127.0.0.1:{port}"

    # when
    with pytest.raises(TransientSendError) as raised:
        provider.send(outbound())

    # then
    assert raised.value.code == "connection"
    assert raised.value.exchanges[0].url == f"http://127.0.0.1:{port}/v1/Account/{MASK}/Message/"


@pytest.mark.parametrize(
    "auth_id,auth_token",
    [("", AUTH_TOKEN), (AUTH_ID, ""), ("not-an-auth-id", AUTH_TOKEN)],
    ids=["no-auth-id", "no-token", "malformed-auth-id"],
)
def test_send_without_usable_credentials_is_permanent(plivo_settings, auth_id, auth_token):
    # given
    plivo_settings.PLIVO_AUTH_ID = auth_id
    plivo_settings.PLIVO_AUTH_TOKEN = auth_token

    # when
    with pytest.raises(PermanentSendError) as raised:
        provider.send(outbound())

    # then
    assert raised.value.code == "not_configured"


@pytest.mark.django_db
def test_whole_loop_on_plivo(post_webhook, plivo_api, plivo_settings, django_capture_on_commit_callbacks):
    # given: a DLT-bound shortcode replying through Plivo
    service_shortcode(dlt=True, provider="plivo")
    template = Template.objects.get(content=BALANCE)

    # when: a subscriber sends "2"
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed(post_webhook, INBOUND, load_fixture("conversations", "plivo", "inbound_sms.txt"))

    # then: the reply went to Plivo's API and was queued there
    assert response.status_code == 200, response.content
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    sent = plivo_api.requests[0].json()
    # the shortcode is DLT-bound: its header is the sender and the template's IDs travel along
    assert (sent["src"], sent["dst"], sent["text"]) == ("SMSGTE", "919876543210", reply.body)
    assert (sent["dlt_template_id"], sent["dlt_entity_id"]) == (template.dlt_template_id, template.entity.pe_id)
    assert sent["dlt_template_category"] == "service_implicit"
    assert sent["url"] == f"{BASE}{STATUS}?ref={reply.uuid}"
    reply.refresh_from_db()
    assert (reply.status, reply.provider_message_id) == ("sent", OUTBOUND_UUID)

    # when: Plivo reports delivery to the URL it was given
    path = sent["url"].removeprefix(BASE)
    response = post_signed(post_webhook, path, load_fixture("delivery", "plivo", "status_delivered.txt"))

    # then
    assert response.status_code == 200, response.content
    reply.refresh_from_db()
    assert reply.status == "delivered"
    assert Message.objects.get(direction=Direction.INBOUND).status == "handled"


@pytest.mark.django_db
def test_message_deliver_through_plivo(plivo_api):
    # given: a queued reply on a Plivo shortcode bound to a DLT template
    message = OutboundMessageFactory(provider="plivo", status=Status.QUEUED, provider_options=DLT)

    # when
    result = message_deliver(message_id=message.id, final_attempt=True)

    # then
    message.refresh_from_db()
    assert (result, message.status, message.provider_message_id) == ("sent", "sent", OUTBOUND_UUID)
    assert plivo_api.requests[0].json()["dlt_template_id"] == DLT["dlt_template_id"]

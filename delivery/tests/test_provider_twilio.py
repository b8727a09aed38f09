"""
Twilio provider: signatures (docs/PROVIDERS.md, Twilio: signatures), webhooks through the real URLs, and sends
against a local HTTP server standing in for api.twilio.com.
"""

import json
import socket
from functools import partial

import pytest
from django.http import QueryDict
from django.test import RequestFactory
from twilio.request_validator import RequestValidator
from twilio.rest.api.v2010.account.message import MessageInstance

from commands.tests.factories import ShortcodeFactory
from conftest import FakeResponse, load_fixture
from conversations.tests.factories import service_shortcode
from delivery.deliver import message_deliver
from delivery.models import DeliveryReport, Message
from delivery.providers.base import PermanentSendError, SendError, TransientSendError, webhook_request_from
from delivery.providers.twilio import TWIML_EMPTY, TwilioProvider, signature_valid
from delivery.statuses import Direction, Status
from delivery.tests.factories import OutboundMessageFactory, basic_auth, outbound_sms

ACCOUNT_SID = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
AUTH_TOKEN = "test-twilio-auth-token"
SHARED_KEY_SECRET = "test-twilio-shared-key-secret"
BASE = "https://sms.example.com"
INBOUND = "/webhooks/twilio/inbound/"
STATUS = "/webhooks/twilio/status/"
OUTBOUND_SID = "SM5f3e2b8c9d0a4b1c8e7f6a5b4c3d2e1f"  # the MessageSid of every status fixture

provider = TwilioProvider()


@pytest.fixture(autouse=True)
def twilio_settings(settings):
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_SHARED_KEY_SECRET = ""
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_FROM = ""
    settings.TWILIO_API_BASE = ""
    settings.GATEWAY_TIMEOUT_SECONDS = 5.0
    return settings


def twilio_signature(url: str, body: bytes, token: str = AUTH_TOKEN, algorithm: str | None = None) -> str:
    """Sign a form body the way Twilio does, with the SDK's own compute function."""
    return RequestValidator(token).compute_signature(url, QueryDict(body), algorithm)


def post_signed(post_webhook, path: str, body: bytes, *, signed_url: str | None = None, headers=None, **kwargs):
    signature = twilio_signature(signed_url or BASE + path, body, **kwargs)
    return post_webhook(path, body, sign=False, headers={"X-Twilio-Signature": signature, **(headers or {})})


# Signatures as pure functions: twilio-python's vectors ----------------------------------

VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
VECTOR_BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"


@pytest.mark.parametrize(
    "url,params,signature,algorithm",
    [
        (VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", None),
        # The SDK accepts the URL with and without the default port.
        (VECTOR_URL.replace(".com/", ".com:443/"), VECTOR_PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=", None),
        (VECTOR_URL, VECTOR_PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=", None),
        (
            VECTOR_URL,
            QueryDict("Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234"),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
            None,
        ),
        (
            f"{VECTOR_URL}&bodySHA256={VECTOR_BODY_HASH}",
            '{"property": "value", "boolean": true}',
            "a9nBmqA0ju/hNViExpshrM61xv4=",
            None,
        ),
        (VECTOR_URL, VECTOR_PARAMS, "033hgUJA9M/hXIZsYjwkerEP/DBm35nEri5FhCYjA5s=", "HMAC_SHA256"),
    ],
    ids=["form", "port-443", "port-added", "repeated-key", "json-body", "hmac-sha256"],
)
def test_protocol_vectors_validate(url, params, signature, algorithm):
    # given: twilio-python's own vectors, token 12345

    # when
    valid = signature_valid("12345", url, params, signature, algorithm or "HMAC_SHA1")

    # then
    assert valid


@pytest.mark.parametrize(
    "token,url,params,signature",
    [
        ("12346", VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("12345", VECTOR_URL.replace("https://", "http://"), VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("12345", "https://mycompany.com/myapp.php?bar=2&foo=1", VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("12345", VECTOR_URL, {**VECTOR_PARAMS, "Digits": "1235"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        # A dict keeps one value of a repeated key: the signature over both no longer matches.
        (
            "12345",
            VECTOR_URL,
            {"Sid": "CA123", "SidAccount": "AC123", "Digits": "1234"},
            "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
        ),
        (
            "12345",
            f"{VECTOR_URL}&bodySHA256={VECTOR_BODY_HASH}",
            '{"property": "value", "boolean": false}',
            "a9nBmqA0ju/hNViExpshrM61xv4=",
        ),
        ("", VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("12345", VECTOR_URL, VECTOR_PARAMS, ""),
    ],
    ids=["token", "scheme", "query-order", "param", "repeated-key-lost", "json-body", "no-token", "no-signature"],
)
def test_protocol_vectors_fail_when_anything_changes(token, url, params, signature):
    # given: one detail of a valid vector changed

    # when
    valid = signature_valid(token, url, params, signature)

    # then
    assert not valid


# Inbound webhook -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fixture,sid,body",
    [
        ("inbound_sms.txt", "SM1f0e8ae6ade43cb3c0ce4525424e404f", "2"),
        ("inbound_unicode.txt", "SM8c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f", "बैलेंस 2"),
        ("inbound_messaging_service.txt", "SM0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d", "BAL"),
    ],
)
def test_signed_inbound_is_stored_and_handled(post_webhook, django_capture_on_commit_callbacks, fixture, sid, body):
    # given: the demo shortcode and an inbound SMS signed by the SDK
    ShortcodeFactory(number="57675", provider="console")
    payload = load_fixture("conversations", "twilio", fixture)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed(post_webhook, INBOUND, payload)

    # then: empty TwiML, and the message is stored and handled
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/xml"
    assert response.content.decode() == TWIML_EMPTY
    message = Message.objects.get(direction=Direction.INBOUND)
    assert message.provider == "twilio"
    assert message.provider_message_id == sid
    assert message.phone == "+919876543210"
    assert message.shortcode == "57675"
    assert message.body == body
    assert message.status == "handled"


@pytest.mark.django_db
def test_repeated_form_keys_are_signed_as_twilio_signs_them(post_webhook):
    # given: a body with a repeated key, signed over every value (MMS media; docs/PROVIDERS.md, Twilio: signatures)
    payload = (
        load_fixture("conversations", "twilio", "inbound_sms.txt")
        + b"&MediaUrl0=https%3A%2F%2Fa&MediaUrl0=https%3A%2F%2Fb"
    )

    # when
    response = post_signed(post_webhook, INBOUND, payload)

    # then
    assert response.status_code == 200, response.content


def _tampered(payload: bytes) -> bytes:
    return payload.replace(b"Body=2", b"Body=3")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "signed_url,change_body,token",
    [
        (f"{BASE}/webhooks/twilio/status/", False, AUTH_TOKEN),  # another path
        (f"http://sms.example.com{INBOUND}", False, AUTH_TOKEN),  # the scheme a TLS proxy hides
        (f"https://evil.example.com{INBOUND}", False, AUTH_TOKEN),  # another host
        (f"{BASE}{INBOUND}?ref=x", False, AUTH_TOKEN),  # another query
        (f"{BASE}{INBOUND}", True, AUTH_TOKEN),  # a changed body byte
        (f"{BASE}{INBOUND}", False, "another-accounts-token"),
    ],
    ids=["path", "scheme", "host", "query", "body", "token"],
)
def test_inbound_with_a_changed_detail_is_refused(post_webhook, signed_url, change_body, token):
    # given
    payload = load_fixture("conversations", "twilio", "inbound_sms.txt")
    signature = twilio_signature(signed_url, payload, token)

    # when
    sent = _tampered(payload) if change_body else payload
    response = post_webhook(INBOUND, sent, sign=False, headers={"X-Twilio-Signature": signature})

    # then
    assert response.status_code == 403
    assert not Message.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("debug,expected", [(False, 403), (True, 200)])
def test_unset_auth_token_fails_closed_unless_debug(post_webhook, twilio_settings, debug, expected):
    # given: no TWILIO_AUTH_TOKEN; a request signed with what the token used to be
    twilio_settings.TWILIO_AUTH_TOKEN = ""
    twilio_settings.DEBUG = debug
    payload = load_fixture("conversations", "twilio", "inbound_sms.txt")

    # when
    response = post_signed(post_webhook, INBOUND, payload)

    # then
    assert response.status_code == expected
    assert Message.objects.filter(direction=Direction.INBOUND).exists() == (expected == 200)


@pytest.mark.django_db
@pytest.mark.parametrize("missing", ["From", "To", "Body", "MessageSid"], ids=lambda name: f"without-{name}")
def test_inbound_without_a_field_is_400_naming_it(post_webhook, missing):
    # given: a signed body lacking one field (and its deprecated duplicates)
    fields = QueryDict(load_fixture("conversations", "twilio", "inbound_sms.txt"), mutable=True)
    for name in (missing, "SmsSid", "SmsMessageSid") if missing == "MessageSid" else (missing,):
        del fields[name]
    payload = fields.urlencode().encode()

    # when
    response = post_signed(post_webhook, INBOUND, payload)

    # then
    assert response.status_code == 400
    assert response.json()["field"] == missing


# SharedKey signing (twilio 9.13.0) ---------------------------------------------------------------

SHARED_KEY_HEADER = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_test,algorithm=HMAC_SHA256"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "shared_secret,signed_with,algorithm,header,expected",
    [
        (SHARED_KEY_SECRET, SHARED_KEY_SECRET, "HMAC_SHA256", SHARED_KEY_HEADER, 200),
        (SHARED_KEY_SECRET, AUTH_TOKEN, "HMAC_SHA256", SHARED_KEY_HEADER, 403),  # the Auth Token is not the key
        (SHARED_KEY_SECRET, SHARED_KEY_SECRET, "HMAC_SHA1", SHARED_KEY_HEADER, 403),  # the header names SHA-256
        (
            SHARED_KEY_SECRET,
            SHARED_KEY_SECRET,
            "HMAC_SHA256",
            {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_test,algorithm=HMAC_SHA512"},
            403,
        ),
        ("", SHARED_KEY_SECRET, "HMAC_SHA256", SHARED_KEY_HEADER, 403),  # no secret configured: closed
        (SHARED_KEY_SECRET, AUTH_TOKEN, None, {}, 200),  # no header: the legacy Auth Token signature
    ],
    ids=["sha256", "auth-token-key", "wrong-algorithm", "unknown-algorithm", "secret-unset", "legacy"],
)
def test_shared_key_signatures(post_webhook, twilio_settings, shared_secret, signed_with, algorithm, header, expected):
    # given
    twilio_settings.TWILIO_SHARED_KEY_SECRET = shared_secret
    payload = load_fixture("conversations", "twilio", "inbound_sms.txt")

    # when
    response = post_signed(post_webhook, INBOUND, payload, token=signed_with, algorithm=algorithm, headers=header)

    # then
    assert response.status_code == expected, response.content


# JSON bodies: the bodySHA256 path -------------------------------------------------------------------


def _json_request(payload: dict, *, body_hash: str | None = None) -> tuple[str, bytes, str]:
    raw = json.dumps(payload).encode()
    validator = RequestValidator(AUTH_TOKEN)
    path = f"{STATUS}?bodySHA256={body_hash or validator.compute_hash(raw.decode())}"
    return path, raw, validator.compute_signature(BASE + path, {})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change,expected",
    [(None, 200), ("body", 403), ("hash", 403), ("no-hash", 403)],
)
def test_json_body_is_checked_through_body_sha256(post_webhook, change, expected):
    # given: a JSON status report whose URL carries the hash of its body
    OutboundMessageFactory(provider="twilio", provider_message_id=OUTBOUND_SID, status=Status.SENT)
    report = {"MessageSid": OUTBOUND_SID, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
    path, raw, signature = _json_request(report, body_hash="0" * 64 if change == "hash" else None)
    if change == "body":
        raw = raw.replace(b"delivered", b"failed\x20\x20\x20")
    if change == "no-hash":
        path = STATUS
        signature = RequestValidator(AUTH_TOKEN).compute_signature(BASE + path, {})

    # when
    response = post_webhook(path, raw, sign=False, headers={"X-Twilio-Signature": signature})

    # then
    assert response.status_code == expected, response.content
    assert Message.objects.get().status == ("delivered" if expected == 200 else "sent")


# Status callbacks ----------------------------------------------------------------------------------

# fixture -> (Twilio's word, our report status, the message's status afterwards from `sent`, error code)
STATUS_CASES = [
    ("status_accepted.txt", "accepted", "queued", "sent", ""),
    ("status_scheduled.txt", "scheduled", "queued", "sent", ""),
    ("status_queued.txt", "queued", "queued", "sent", ""),
    ("status_sending.txt", "sending", "sending", "sent", ""),
    ("status_sent.txt", "sent", "sent", "sent", ""),
    ("status_delivered.txt", "delivered", "delivered", "delivered", ""),
    ("status_read.txt", "read", "delivered", "delivered", ""),
    ("status_undelivered.txt", "undelivered", "undelivered", "undelivered", "30003"),
    ("status_partially_delivered.txt", "partially_delivered", "undelivered", "undelivered", "30008"),
    ("status_failed.txt", "failed", "failed", "failed", "30007"),
    ("status_canceled.txt", "canceled", "failed", "failed", ""),
    ("status_receiving.txt", "receiving", "queued", "sent", ""),
    ("status_received.txt", "received", "queued", "sent", ""),
    ("status_unknown.txt", "delivery_unknown", "", "sent", ""),
]


@pytest.mark.django_db
@pytest.mark.parametrize("fixture,word,report_status,message_status,error_code", STATUS_CASES)
def test_signed_status_callback_is_recorded(post_webhook, fixture, word, report_status, message_status, error_code):
    # given: a reply Twilio accepted
    message = OutboundMessageFactory(provider="twilio", provider_message_id=OUTBOUND_SID, status=Status.SENT)

    # when
    response = post_signed(post_webhook, STATUS, load_fixture("delivery", "twilio", fixture))

    # then
    assert response.status_code == 200, response.content
    assert response.content.decode() == TWIML_EMPTY
    report = DeliveryReport.objects.get()
    assert (report.message_id, report.provider, report.provider_status) == (message.id, "twilio", word)
    assert report.status == report_status
    assert report.error_code == error_code
    message.refresh_from_db()
    assert message.status == message_status


@pytest.mark.django_db
def test_status_callback_finds_the_message_by_ref_before_its_sid_is_known(post_webhook):
    # given: the send has not stored Twilio's sid yet
    message = OutboundMessageFactory(provider="twilio", status=Status.SENDING)
    path = f"{STATUS}?ref={message.uuid}"

    # when
    response = post_signed(post_webhook, path, load_fixture("delivery", "twilio", "status_delivered.txt"))

    # then
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == "delivered"
    assert DeliveryReport.objects.get().reference == message.uuid


@pytest.mark.django_db
def test_status_callback_with_a_changed_status_is_refused(post_webhook):
    # given: a signed "undelivered" report turned into "delivered" on the way
    message = OutboundMessageFactory(provider="twilio", provider_message_id=OUTBOUND_SID, status=Status.SENT)
    payload = load_fixture("delivery", "twilio", "status_undelivered.txt")
    signature = twilio_signature(BASE + STATUS, payload)

    # when
    forged = payload.replace(b"=undelivered", b"=delivered")
    response = post_webhook(STATUS, forged, sign=False, headers={"X-Twilio-Signature": signature})

    # then
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.status == "sent"
    assert not DeliveryReport.objects.exists()


def test_status_map_covers_every_sdk_status_with_our_words():
    # given
    sdk_statuses = {value for name, value in vars(MessageInstance.Status).items() if not name.startswith("_")}

    # then
    assert set(TwilioProvider.STATUS_MAP) == sdk_statuses
    assert set(TwilioProvider.STATUS_MAP.values()) <= set(Status)


# Slug-less webhooks (/sms-handler, /sms-dlr) ----------------------------------------------------------


@pytest.mark.parametrize(
    "headers,body,claimed",
    [
        ({"HTTP_X_TWILIO_SIGNATURE": "anything"}, "from=%2B919876543210&to=57675&body=2", True),
        # Twilio's payload shape without its signature is not Twilio's to authenticate.
        ({}, "MessageSid=SM1&AccountSid=AC1&From=%2B1&To=57675&Body=2", False),
        ({}, "MessageSid=SM1&From=%2B1&To=57675&Body=2", False),
        ({}, "from=%2B919876543210&to=57675&body=2&id=gen-1", False),
    ],
    ids=["signature-header", "sids", "sid-without-account", "generic"],
)
def test_claims(headers, body, claimed):
    # given
    webhook = webhook_request_from(
        RequestFactory().post("/sms-handler", body, content_type="application/x-www-form-urlencoded", **headers)
    )

    # then
    assert provider.claims(webhook) is claimed


# Sending through the API ------------------------------------------------------------------------------


outbound = partial(outbound_sms, provider="twilio")


def created(status: int = 201) -> FakeResponse:
    return FakeResponse(status, json.loads(load_fixture("delivery", "twilio", "api_message_created.json")))


@pytest.fixture
def twilio_api(provider_server, twilio_settings):
    twilio_settings.TWILIO_API_BASE = provider_server.url
    provider_server.script = [created()]
    return provider_server


@pytest.mark.parametrize(
    "service_sid,twilio_from,options,sender_fields",
    [
        ("", "", {}, {"From": ["57675"]}),
        ("", "+15005550006", {}, {"From": ["+15005550006"]}),
        ("", "+15005550006", {"sender": "57676"}, {"From": ["57676"]}),
        (
            "MGXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            "+15005550006",
            {},
            {"MessagingServiceSid": ["MGXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"]},
        ),
        (
            "MGXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            "",
            {"messaging_service_sid": "MG" + "b" * 32},
            {"MessagingServiceSid": ["MG" + "b" * 32]},
        ),
    ],
    ids=["shortcode", "twilio-from", "option-sender", "messaging-service", "shortcode-messaging-service"],
)
def test_send_makes_the_documented_request(
    twilio_api, twilio_settings, service_sid, twilio_from, options, sender_fields
):
    # given
    twilio_settings.TWILIO_MESSAGING_SERVICE_SID = service_sid
    twilio_settings.TWILIO_FROM = twilio_from
    sms = outbound(options=options)

    # when
    result = provider.send(sms)

    # then: one form POST to the account's Messages resource, with Basic auth
    (request,) = twilio_api.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Authorization"] == basic_auth(ACCOUNT_SID, AUTH_TOKEN)
    form = dict(QueryDict(request.body).lists())
    assert form == {
        "To": ["+919876543210"],
        "Body": ["Your balance is Rs 120.00"],
        "StatusCallback": [sms.callback_url],
        **sender_fields,
    }
    # and: Twilio's sid is ours to keep, and the call is recorded for the channel log
    assert result.provider_message_id == OUTBOUND_SID
    (exchange,) = result.exchanges
    assert (exchange.method, exchange.status_code) == ("POST", 201)
    assert exchange.url == f"{twilio_api.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert "StatusCallback=" in exchange.request_body
    assert OUTBOUND_SID in exchange.response_body


def test_send_without_callback_url_sends_no_status_callback(twilio_api):
    # given: no PUBLIC_BASE_URL, so no callback URL
    sms = outbound(callback_url=None)

    # when
    provider.send(sms)

    # then
    assert "StatusCallback" not in QueryDict(twilio_api.requests[0].body)


@pytest.mark.parametrize(
    "status,fixture,headers,error,code,retry_after",
    [
        (400, "api_error_21211.json", {}, PermanentSendError, "21211", None),
        (400, "api_error_21610.json", {}, PermanentSendError, "21610", None),
        (429, "api_error_20429.json", {"Retry-After": "7"}, TransientSendError, "20429", 7.0),
        (500, "api_error_20500.json", {}, TransientSendError, "20500", None),
        (503, "api_error_20500.json", {"Retry-After": "30"}, TransientSendError, "20500", 30.0),
    ],
    ids=["21211-invalid-to", "21610-opted-out", "429", "500", "503"],
)
def test_send_sorts_api_errors(twilio_api, status, fixture, headers, error, code, retry_after):
    # given
    twilio_api.script = [FakeResponse(status, json.loads(load_fixture("delivery", "twilio", fixture)), headers)]

    # when
    with pytest.raises(SendError) as raised:
        provider.send(outbound())

    # then
    assert type(raised.value) is error
    assert raised.value.code == code
    assert raised.value.retry_after == retry_after
    assert "\x1b[" not in str(raised.value)  # no terminal colours in the stored error
    (exchange,) = raised.value.exchanges
    assert exchange.status_code == status


@pytest.mark.parametrize("status,error", [(400, PermanentSendError), (503, TransientSendError)])
def test_send_sorts_problem_details_errors(twilio_api, status, error):
    # given: the RFC 9457 error shape some Twilio APIs answer with (an edge case: no fixture)
    problem = {
        "type": "https://www.twilio.com/docs/errors/21211",
        "title": "Invalid 'To' Phone Number",
        "status": status,
        "code": 21211,
        "detail": "The 'To' number is not a valid phone number.",
    }
    twilio_api.script = [FakeResponse(status, problem)]

    # when
    with pytest.raises(SendError) as raised:
        provider.send(outbound())

    # then
    assert type(raised.value) is error
    assert raised.value.code == "21211"
    assert "not a valid phone number" in str(raised.value)


def test_send_timeout_is_transient(twilio_api, twilio_settings):
    # given: an API slower than our timeout
    twilio_settings.GATEWAY_TIMEOUT_SECONDS = 0.2
    twilio_api.script = [FakeResponse(201, {}, delay=1.0)]

    # when
    with pytest.raises(TransientSendError) as raised:
        provider.send(outbound())

    # then
    assert raised.value.code == "timeout"
    (exchange,) = raised.value.exchanges
    assert exchange.status_code is None
    assert "Timeout" in exchange.error


def test_send_connection_refused_is_transient(twilio_settings):
    # given: nothing listens on the API's port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    twilio_settings.TWILIO_API_BASE = f"http://127.0.0.1:{port}"

    # when
    with pytest.raises(TransientSendError) as raised:
        provider.send(outbound())

    # then
    assert raised.value.code == "connection"
    assert raised.value.exchanges[0].url.startswith(f"http://127.0.0.1:{port}/2010-04-01/")


@pytest.mark.parametrize("missing", ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"])
def test_send_without_credentials_is_permanent(twilio_settings, missing):
    # given
    setattr(twilio_settings, missing, "")

    # when
    with pytest.raises(PermanentSendError) as raised:
        provider.send(outbound())

    # then
    assert raised.value.code == "not_configured"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "script,status,provider_message_id,error_code",
    [
        ([created()], "sent", OUTBOUND_SID, ""),
        (
            [FakeResponse(400, json.loads(load_fixture("delivery", "twilio", "api_error_21610.json")))],
            "failed",
            None,
            "21610",
        ),
    ],
    ids=["accepted", "opted-out"],
)
def test_message_deliver_through_twilio(twilio_api, script, status, provider_message_id, error_code):
    # given: a queued reply on a Twilio shortcode
    twilio_api.script = script
    message = OutboundMessageFactory(provider="twilio", status=Status.QUEUED)

    # when
    result = message_deliver(message_id=message.id, final_attempt=True)

    # then
    message.refresh_from_db()
    assert result == status
    assert message.status == status
    assert message.provider_message_id == provider_message_id
    assert message.error_code == error_code
    form = QueryDict(twilio_api.requests[0].body)
    assert form["To"] == message.phone
    assert form["StatusCallback"] == f"{BASE}{STATUS}?ref={message.uuid}"


@pytest.mark.django_db
def test_whole_loop_on_twilio(post_webhook, twilio_api, twilio_settings, django_capture_on_commit_callbacks):
    # given: a DLT-bound shortcode replying through Twilio
    service_shortcode(dlt=True, provider="twilio")

    # when: a subscriber sends "2"
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed(post_webhook, INBOUND, load_fixture("conversations", "twilio", "inbound_sms.txt"))

    # then: the reply went to Twilio's API and was accepted
    assert response.status_code == 200, response.content
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    form = QueryDict(twilio_api.requests[0].body)
    assert (form["To"], form["From"]) == ("+919876543210", "SMSGTE")  # the shortcode's DLT header
    assert form["Body"] == reply.body
    assert form["StatusCallback"] == f"{BASE}{STATUS}?ref={reply.uuid}"
    reply.refresh_from_db()
    assert (reply.status, reply.provider_message_id) == ("sent", OUTBOUND_SID)

    # when: Twilio reports delivery to the callback URL it was given
    path = form["StatusCallback"].removeprefix(BASE)
    response = post_signed(post_webhook, path, load_fixture("delivery", "twilio", "status_delivered.txt"))

    # then
    assert response.status_code == 200, response.content
    reply.refresh_from_db()
    assert reply.status == "delivered"
    assert Message.objects.get(direction=Direction.INBOUND).status == "handled"

"""
The receiving half of the provider contract needs no Django request: a WebhookRequest
built from its parts, as a transport other than the webhook view builds one, is
authenticated and parsed by each provider. The view around it refuses a provider whose
secret is unset before the provider is asked, in one place for all of them.
"""

import json
from collections.abc import Callable

import pytest
from django.http import QueryDict
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3
from twilio.request_validator import RequestValidator

from conftest import WEBHOOK_SECRET, load_fixture, sinch_signed_headers
from delivery.models import ChannelLog
from delivery.providers import get_provider
from delivery.providers.base import (
    VOUCHED_BODY_ONLY,
    VOUCHED_WHOLE_REQUEST,
    WebhookBadRequest,
    WebhookForbidden,
    WebhookRequest,
    webhook_request,
)
from delivery.providers.replay import nonces_release

BASE = "https://sms.example.com"
FORM = "application/x-www-form-urlencoded"
TWILIO_TOKEN = "hand-built-twilio-token"
PLIVO_TOKEN = "hand-built-plivo-token"
SINCH_SECRET = "hand-built-sinch-secret"
MSG91_TOKEN = "hand-built-msg91-token"


@pytest.fixture(autouse=True)
def provider_secrets(settings):
    settings.DEBUG = False
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_SHARED_KEY_SECRET = ""
    settings.PLIVO_AUTH_TOKEN = PLIVO_TOKEN
    settings.SINCH_WEBHOOK_SECRET = SINCH_SECRET
    settings.SINCH_WEBHOOK_TOKEN = ""
    settings.MSG91_WEBHOOK_TOKEN = MSG91_TOKEN
    return settings


def twilio_inbound() -> WebhookRequest:
    url = f"{BASE}/webhooks/twilio/inbound/"
    body = load_fixture("conversations", "twilio", "inbound_sms.txt")
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, QueryDict(body))
    return webhook_request("POST", url, headers={"Content-Type": FORM, "X-Twilio-Signature": signature}, body=body)


def plivo_inbound() -> WebhookRequest:
    url = f"{BASE}/webhooks/plivo/inbound/"
    body = load_fixture("conversations", "plivo", "inbound_sms.txt")
    nonce = "12345678901234567890"
    signed = construct_post_url(url, dict(QueryDict(body).lists())).decode()
    signature = get_signature_v3(PLIVO_TOKEN.encode(), signed, nonce.encode()).decode()
    headers = {"Content-Type": FORM, "X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}
    return webhook_request("POST", url, headers=headers, body=body)


def sinch_inbound() -> WebhookRequest:
    body = load_fixture("conversations", "sinch", "inbound_mo_text.json")
    headers = {"Content-Type": "application/json", **sinch_signed_headers(body, secret=SINCH_SECRET)}
    return webhook_request("POST", f"{BASE}/webhooks/sinch/inbound/", headers=headers, body=body)


def msg91_inbound() -> WebhookRequest:
    body = load_fixture("conversations", "msg91", "inbound_json.json")
    url = f"{BASE}/webhooks/msg91/inbound/?token={MSG91_TOKEN}"
    return webhook_request("POST", url, headers={"Content-Type": "application/json"}, body=body)


def generic_inbound() -> WebhookRequest:
    body = load_fixture("conversations", "generic", "inbound_json.json")
    headers = {"Content-Type": "application/json", "X-Webhook-Secret": WEBHOOK_SECRET}
    return webhook_request("POST", f"{BASE}/webhooks/generic/inbound/", headers=headers, body=body)


INBOUND_CASES = [
    # provider, the webhook as a transport would hand it over, what its credential vouches for, sender
    ("twilio", twilio_inbound, VOUCHED_WHOLE_REQUEST, "+919876543210"),
    ("plivo", plivo_inbound, VOUCHED_WHOLE_REQUEST, "919876543210"),
    ("sinch", sinch_inbound, VOUCHED_BODY_ONLY, "919876543210"),
    ("msg91", msg91_inbound, VOUCHED_WHOLE_REQUEST, "919876543211"),
    ("generic", generic_inbound, VOUCHED_WHOLE_REQUEST, "+919876543210"),
]


@pytest.mark.parametrize("slug,build,scope,sender", INBOUND_CASES, ids=[case[0] for case in INBOUND_CASES])
def test_a_hand_built_webhook_is_authenticated_and_parsed(slug, build, scope, sender):
    # given: a webhook from its parts; no Django request exists anywhere
    provider = get_provider(slug)
    webhook = build()

    # when
    verified = provider.authenticate(webhook)
    sms = provider.parse_inbound(webhook, verified)

    # then
    assert verified.scope == scope
    assert (sms.sender, sms.recipient, sms.body) == (sender, "57675", "2")
    assert sms.provider_message_id
    assert provider.ack().body


# Signatures over the body; MSG91's token and the generic shared-secret header vouch for the sender only.
SIGNED_CASES = [case for case in INBOUND_CASES if case[0] in ("twilio", "plivo", "sinch")]


@pytest.mark.parametrize("slug,build,scope,sender", SIGNED_CASES, ids=[case[0] for case in SIGNED_CASES])
def test_a_hand_built_webhook_with_another_body_is_refused(slug, build, scope, sender):
    # given: a signed webhook whose body changed after signing
    signed = build()
    tampered = webhook_request(
        signed.method, signed.url, headers=dict(signed.headers), body=signed.body.replace(b"2", b"3")
    )

    # then
    with pytest.raises(WebhookForbidden):
        get_provider(slug).authenticate(tampered)


def test_a_released_nonce_lets_the_same_signed_webhook_pass_again():
    # given: a Sinch webhook whose nonce was claimed by a first authentication
    provider = get_provider("sinch")
    webhook = sinch_inbound()
    verified = provider.authenticate(webhook)
    assert len(verified.nonces) == 1

    # when: it is replayed, then the claim is given back (the first delivery failed) and it comes again
    with pytest.raises(WebhookForbidden, match="already used"):
        provider.authenticate(webhook)
    nonces_release(verified.nonces)

    # then
    assert provider.authenticate(webhook).nonces == verified.nonces


def test_an_unsigned_query_reference_does_not_choose_the_message_of_a_body_signed_report():
    # given: a Sinch report signed over its body, with a `?ref=` the signature does not cover
    body = load_fixture("delivery", "sinch", "status_recipient_delivered.json")
    client_reference = json.loads(body)["client_reference"]
    headers = {"Content-Type": "application/json", **sinch_signed_headers(body, secret=SINCH_SECRET)}
    url = f"{BASE}/webhooks/sinch/status/?ref=00000000-0000-0000-0000-000000000000"
    webhook = webhook_request("POST", url, headers=headers, body=body)
    provider = get_provider("sinch")

    # then
    verified = provider.authenticate(webhook)
    with pytest.raises(WebhookForbidden, match="disagrees"):
        provider.parse_status(webhook, verified)
    same = webhook_request("POST", f"{BASE}/webhooks/sinch/status/?ref={client_reference}", headers=headers, body=body)
    assert [update.reference for update in provider.parse_status(same, verified)] == [client_reference]


def test_a_multipart_body_is_parsed_into_the_form():
    # given
    body = encode_multipart(BOUNDARY, {"from": "+919876543210", "to": "57675", "body": "2", "id": "mp-1"})
    headers = {"Content-Type": MULTIPART_CONTENT, "X-Webhook-Secret": WEBHOOK_SECRET}
    webhook = webhook_request("POST", f"{BASE}/webhooks/generic/inbound/", headers=headers, body=body)
    provider = get_provider("generic")

    # when
    sms = provider.parse_inbound(webhook, provider.authenticate(webhook))

    # then
    assert webhook.content_type == "multipart/form-data"
    assert (sms.sender, sms.body, sms.provider_message_id) == ("+919876543210", "2", "mp-1")


@pytest.mark.parametrize(
    "content_type,body,error",
    [
        (MULTIPART_CONTENT, b"--not-the-boundary\r\nnonsense", "empty body"),
        ("multipart/form-data", b"from=1&to=2&body=3", "malformed multipart body"),  # no boundary
        ("text/plain", b"from=1&to=2&body=3", "is not accepted"),
    ],
    ids=["wrong-boundary", "no-boundary", "not-a-form"],
)
def test_an_unreadable_body_is_a_bad_request(content_type, body, error):
    # given
    headers = {"Content-Type": content_type, "X-Webhook-Secret": WEBHOOK_SECRET}
    webhook = webhook_request("POST", f"{BASE}/webhooks/generic/inbound/", headers=headers, body=body)
    provider = get_provider("generic")

    # then
    with pytest.raises(WebhookBadRequest, match=error):
        provider.parse_inbound(webhook, provider.authenticate(webhook))


# The view: the fail-closed refusal, once for every provider ------------------------------------------

UNSET: dict[str, Callable] = {
    "twilio": lambda s: setattr(s, "TWILIO_AUTH_TOKEN", ""),
    "plivo": lambda s: setattr(s, "PLIVO_AUTH_TOKEN", ""),
    "sinch": lambda s: setattr(s, "SINCH_WEBHOOK_SECRET", ""),
    "msg91": lambda s: setattr(s, "MSG91_WEBHOOK_TOKEN", ""),
    "generic": lambda s: setattr(s, "WEBHOOK_SECRET", ""),
    "gupshup": lambda s: setattr(s, "GUPSHUP_WEBHOOK_TOKEN", ""),
}


@pytest.mark.django_db
@pytest.mark.parametrize("slug", UNSET)
@pytest.mark.parametrize("kind", ["inbound", "status"])
def test_every_webhook_of_a_provider_without_its_secret_is_refused_naming_it(
    post_webhook, provider_secrets, slug, kind
):
    # given: the provider's webhook secret unset, DEBUG off
    UNSET[slug](provider_secrets)
    expected = get_provider(slug).webhook_refusal()
    assert expected

    # when: a request carrying every credential the tests know
    response = post_webhook(f"/webhooks/{slug}/{kind}/?token={MSG91_TOKEN}", {"from": "+1", "to": "2", "body": "3"})

    # then
    assert response.status_code == 403
    assert expected in response.json()["error"]
    log = ChannelLog.objects.get()
    assert (log.provider, log.status_code) == (slug, 403)


@pytest.mark.django_db
def test_twilio_webhooks_signed_with_the_shared_key_pass_without_an_auth_token(post_webhook, provider_secrets):
    # given: only the SharedKey secret is configured
    provider_secrets.TWILIO_AUTH_TOKEN = ""
    provider_secrets.TWILIO_SHARED_KEY_SECRET = "shared-key-secret"
    path = "/webhooks/twilio/inbound/"
    body = load_fixture("conversations", "twilio", "inbound_sms.txt")
    settings_header = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_test,algorithm=HMAC_SHA256"}
    signature = RequestValidator("shared-key-secret").compute_signature(BASE + path, QueryDict(body), "HMAC_SHA256")
    legacy = RequestValidator("shared-key-secret").compute_signature(BASE + path, QueryDict(body))

    # when
    shared = post_webhook(path, body, sign=False, headers={"X-Twilio-Signature": signature, **settings_header})
    auth_token = post_webhook(path, body, sign=False, headers={"X-Twilio-Signature": legacy})

    # then: the scheme whose secret is set works; the other is refused, naming its secret
    assert shared.status_code == 200, shared.content
    assert auth_token.status_code == 403
    assert "TWILIO_AUTH_TOKEN" in auth_token.json()["error"]


@pytest.mark.django_db
def test_a_method_no_webhook_takes_is_a_json_405(client):
    # when
    response = client.put("/webhooks/generic/inbound/", b"{}", content_type="application/json")

    # then
    assert response.status_code == 405
    assert "PUT" in response.json()["error"]
    assert "POST" in response["Allow"]

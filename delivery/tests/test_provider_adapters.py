"""
Configurable adapters: the format (registry, validation, auth kinds, shortcode overrides)
and the shipped configs' quirks, with sends against a local HTTP server. What every
provider does, the adapters included: test_provider_contract.py.

Gupshup delivers its reports with GET, the parameters in the query string. Our webhook
views accept POST only (delivery.webhooks.WebhookView), so these tests POST an empty body
to the status URL with the recorded query string appended; the adapter reads query and
body alike, so the same fixture posted as a form body parses the same way.
"""

import json
import uuid
from functools import partial
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

from conftest import FakeResponse, load_fixture
from delivery.deliver import message_deliver
from delivery.models import DeliveryReport
from delivery.providers import _registry, get_provider
from delivery.providers.adapter import ADAPTERS_DIR, AdapterConfigError, ConfigurableProvider
from delivery.providers.base import PermanentSendError, SendError, TransientSendError
from delivery.statuses import Status
from delivery.tests.factories import OutboundMessageFactory, outbound_sms

REFERENCE = uuid.UUID("0b1f9d3c-5a57-4c2e-9d8e-3f7a2b1c4d5e")  # customID in the Textlocal receipts
EXTERNAL_ID = "3412345678901234567-1234"  # externalId in the Gupshup reports
GUPSHUP_TOKEN = "gupshup-token"
TEXTLOCAL_TOKEN = "textlocal-token"


def shipped(slug: str) -> dict:
    return json.loads((ADAPTERS_DIR / f"{slug}.json").read_text())


@pytest.fixture
def adapters(settings, monkeypatch):
    """Tokens and secrets for the shipped adapters; the registry is rebuilt around each test."""
    settings.GUPSHUP_WEBHOOK_TOKEN = GUPSHUP_TOKEN
    settings.TEXTLOCAL_WEBHOOK_TOKEN = TEXTLOCAL_TOKEN
    monkeypatch.setenv("GUPSHUP_USERID", "2000123456")
    monkeypatch.setenv("GUPSHUP_PASSWORD", "gup$hup pass&word")
    monkeypatch.setenv("TEXTLOCAL_API_KEY", "textlocal-api-key")
    _registry.cache_clear()
    yield settings
    _registry.cache_clear()


@pytest.fixture
def pointed_at(adapters, provider_server):
    """Point a shipped adapter's API at the local server, keeping its documented path."""

    def point(slug: str) -> ConfigurableProvider:
        config = shipped(slug)
        config["outbound"]["url"] = provider_server.url + urlsplit(config["outbound"]["url"]).path
        adapters.SMS_ADAPTERS = {slug: config}
        _registry.cache_clear()
        return get_provider(slug)

    return point


outbound = partial(
    outbound_sms,
    provider="textlocal",
    reference=REFERENCE,
    sender="MYBRND",
    # deliver.callback_url adds the token that providers signing nothing must present.
    callback_url=f"https://sms.example.com/webhooks/textlocal/status/?ref={REFERENCE}&token={TEXTLOCAL_TOKEN}",
    options={"dlt_template_id": "1107161234567890123", "dlt_entity_id": "1101234567890123456"},
)


def query(request) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(request.path).query).items()}


def form(request) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(request.body.decode()).items()}


# Registry ----------------------------------------------------------------------------------


def test_every_adapter_file_is_a_provider_named_after_it(adapters):
    # when
    gupshup, textlocal = get_provider("gupshup"), get_provider("textlocal")

    # then
    assert (gupshup.slug, textlocal.slug) == ("gupshup", "textlocal")
    assert isinstance(gupshup, ConfigurableProvider)
    assert gupshup.STATUS_MAP == {"success": "delivered", "failure": "undelivered", "unknown": "sent"}


def test_sms_adapters_setting_adds_providers(adapters):
    # given
    config = shipped("textlocal")
    adapters.SMS_ADAPTERS = {"acme": config}
    _registry.cache_clear()

    # when
    provider = get_provider("acme")

    # then
    assert provider.slug == "acme"
    assert get_provider("textlocal").slug == "textlocal"


def test_an_adapter_may_not_take_a_module_providers_slug(adapters):
    adapters.SMS_ADAPTERS = {"sinch": shipped("textlocal")}
    _registry.cache_clear()
    with pytest.raises(AssertionError, match="sinch"):
        get_provider("sinch")


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: c["outbound"].pop("url"), "outbound.url"),
        (lambda c: c["outbound"]["params"].update(x="{recipient}"), "unknown placeholder"),
        (lambda c: c["status"]["map"].update(Z="done"), "unknown statuses"),
        (lambda c: c["outbound"].update(response={}), "id_path or id_regex"),
        (lambda c: c["inbound"].pop("from"), "inbound.from"),
        (lambda c: c.update(auth={"type": "basic"}), "auth.type"),
        (lambda c: c.update(auth={"type": "header", "secret": "{env:X}"}), "auth.header"),
        (lambda c: c["outbound"].update(method="PUT"), "outbound.method"),
        (lambda c: c["outbound"].update(format="xml"), "outbound.format"),
    ],
)
def test_a_broken_config_fails_when_the_registry_is_built(change, message):
    # given
    config = shipped("textlocal")
    change(config)

    # when / then
    with pytest.raises(AdapterConfigError, match=message):
        ConfigurableProvider("broken", config)


def test_adapter_slugs_are_url_safe():
    with pytest.raises(AdapterConfigError, match="slug"):
        ConfigurableProvider("Text-Local", shipped("textlocal"))


# Delivery reports ------------------------------------------------------------------------

GUPSHUP_CASES = [
    # Each word as a form body is the provider contract's; here, the same reports in the query string.
    ("status_success.txt", "SUCCESS", "delivered", "delivered"),
    ("status_unmapped_word.txt", "DELAYED", "", "sent"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("fixture,word,report_status,message_status", GUPSHUP_CASES)
def test_gupshup_report_in_the_query_string(adapters, post_webhook, fixture, word, report_status, message_status):
    # given
    message = OutboundMessageFactory(provider="gupshup", provider_message_id=EXTERNAL_ID, status=Status.SENT)
    report_query = load_fixture("delivery", "gupshup", fixture).decode()

    # when: Gupshup's GET, as a POST with an empty body (see the module docstring)
    response = post_webhook(f"/webhooks/gupshup/status/?token={GUPSHUP_TOKEN}&{report_query}", b"", sign=False)

    # then
    assert response.status_code == 200, response.content
    report = DeliveryReport.objects.get()
    assert (report.message_id, report.provider_status, report.status) == (message.id, word, report_status)
    assert report.raw_payload["phoneNo"] == "919876543210"
    assert "token" not in report.raw_payload
    message.refresh_from_db()
    assert message.status == message_status


@pytest.mark.django_db
def test_gupshup_report_as_a_form_body_parses_the_same(adapters, post_webhook):
    # given
    message = OutboundMessageFactory(provider="gupshup", provider_message_id=EXTERNAL_ID, status=Status.SENT)

    # when
    response = post_webhook(
        f"/webhooks/gupshup/status/?token={GUPSHUP_TOKEN}",
        load_fixture("delivery", "gupshup", "status_failure.txt"),
        sign=False,
    )

    # then
    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.status, message.error_code, message.error_message) == ("undelivered", "001", "ABSENT_SUBSCRIBER")


@pytest.mark.django_db
def test_textlocal_receipt_without_any_reference_is_a_400(adapters, post_webhook):
    response = post_webhook(
        f"/webhooks/textlocal/status/?token={TEXTLOCAL_TOKEN}", "number=919876543210&status=D", sign=False
    )
    assert response.status_code == 400
    assert response.json()["field"] == "customID"


# Authentication --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "secret_env,header,expected",
    [
        ("s3cret-value", "s3cret-value", 200),
        ("s3cret-value", "wrong", 403),
        ("s3cret-value", None, 403),
        ("", "anything", 403),  # unset secret, DEBUG off: fail closed
    ],
)
def test_shared_secret_header_auth(adapters, post_webhook, monkeypatch, secret_env, header, expected):
    # given: an extra adapter that authenticates with a header holding a secret from the environment
    config = shipped("textlocal")
    config["auth"] = {"type": "header", "header": "X-Acme-Secret", "secret": "{env:ACME_WEBHOOK_SECRET}"}
    adapters.SMS_ADAPTERS = {"acme": config}
    _registry.cache_clear()
    monkeypatch.setenv("ACME_WEBHOOK_SECRET", secret_env)

    # when
    response = post_webhook(
        "/webhooks/acme/status/",
        load_fixture("delivery", "textlocal", "status_delivered.txt"),
        sign=False,
        headers={"X-Acme-Secret": header} if header is not None else {},
    )

    # then
    assert response.status_code == expected


@pytest.mark.django_db
@pytest.mark.parametrize("debug,expected", [(False, 403), (True, 200)])
def test_auth_none_is_for_local_development_only(adapters, post_webhook, debug, expected):
    # given
    config = shipped("textlocal")
    config["auth"] = {"type": "none"}
    adapters.SMS_ADAPTERS = {"acme": config}
    adapters.DEBUG = debug
    _registry.cache_clear()

    # when
    response = post_webhook(
        "/webhooks/acme/status/", load_fixture("delivery", "textlocal", "status_delivered.txt"), sign=False
    )

    # then
    assert response.status_code == expected


# Sending ---------------------------------------------------------------------------------


def test_gupshup_send_is_the_documented_get(pointed_at, provider_server):
    # given
    provider = pointed_at("gupshup")
    provider_server.script = [
        FakeResponse(200, f"success | 919876543210 | {EXTERNAL_ID}", {"Content-Type": "text/plain"})
    ]

    # when
    result = provider.send(outbound())

    # then
    request = provider_server.requests[0]
    assert (request.method, urlsplit(request.path).path) == ("GET", "/GatewayAPI/rest")
    assert query(request) == {
        "method": "SendMessage",
        "send_to": "919876543210",
        "msg": "Your balance is Rs 120.00",
        "msg_type": "TEXT",
        "userid": "2000123456",
        "password": "gup$hup pass&word",
        "auth_scheme": "plain",
        "v": "1.1",
        "format": "text",
        "mask": "MYBRND",
        "principalEntityId": "1101234567890123456",
        "dltTemplateId": "1107161234567890123",
    }
    assert result.provider_message_id == EXTERNAL_ID
    # The password came from the environment: the settings-based channel log masking cannot know it.
    exchange = result.exchanges[0]
    assert [form for form in ("gup$hup pass&word", quote_plus("gup$hup pass&word")) if form in exchange.url] == []
    assert "password=********" in exchange.url


def test_gupshup_send_of_unicode_text_says_so_and_leaves_out_unset_dlt_ids(pointed_at, provider_server):
    # given
    provider = pointed_at("gupshup")
    provider_server.script = [FakeResponse(200, f"success | 919876543210 | {EXTERNAL_ID}")]

    # when
    provider.send(outbound(body="आपका बैलेंस ₹120 है", options={}))

    # then
    sent = query(provider_server.requests[0])
    assert (sent["msg_type"], sent["msg"]) == ("UNICODE_TEXT", "आपका बैलेंस ₹120 है")
    assert "dltTemplateId" not in sent and "principalEntityId" not in sent


def test_textlocal_send_is_the_documented_post(pointed_at, provider_server):
    # given
    provider = pointed_at("textlocal")
    provider_server.script = [
        FakeResponse(
            200,
            {
                "balance": 1162,
                "batch_id": 123456789,
                "cost": 1,
                "num_messages": 1,
                "message": {"num_parts": 1, "sender": "MYBRND", "content": "Your balance is Rs 120.00"},
                "receipt_url": "",
                "custom": str(REFERENCE),
                "messages": [{"id": "1151346216", "recipient": 919876543210}],
                "status": "success",
            },
        )
    ]

    # when
    result = provider.send(outbound())

    # then
    request = provider_server.requests[0]
    assert (request.method, request.path) == ("POST", "/send/")
    assert form(request) == {
        "apikey": "textlocal-api-key",
        "numbers": "919876543210",
        "sender": "MYBRND",
        "message": "Your balance is Rs 120.00",
        "receipt_url": f"https://sms.example.com/webhooks/textlocal/status/?ref={REFERENCE}&token={TEXTLOCAL_TOKEN}",
        "custom": str(REFERENCE),
    }
    assert result.provider_message_id == "1151346216"
    assert "textlocal-api-key" not in result.exchanges[0].request_body
    assert TEXTLOCAL_TOKEN not in result.exchanges[0].request_body


@pytest.mark.parametrize(
    "slug,reply,error,code",
    [
        (
            "textlocal",
            FakeResponse(200, {"errors": [{"code": 192, "message": "Cannot send at this time"}], "status": "failure"}),
            PermanentSendError,
            "192",
        ),
        ("gupshup", FakeResponse(200, "error | 919876543210 | 105 | Invalid password"), PermanentSendError, "no_id"),
        ("gupshup", FakeResponse(502, "Bad Gateway"), TransientSendError, "502"),
        ("textlocal", FakeResponse(429, {"status": "failure"}, {"Retry-After": "5"}), TransientSendError, "429"),
        ("textlocal", FakeResponse(404, "Not Found"), PermanentSendError, "404"),
    ],
)
def test_send_errors_are_sorted_into_transient_and_permanent(pointed_at, provider_server, slug, reply, error, code):
    # given
    provider = pointed_at(slug)
    provider_server.script = [reply]

    # when
    with pytest.raises(SendError) as raised:
        provider.send(outbound())

    # then
    assert type(raised.value) is error
    assert raised.value.code == code
    assert raised.value.exchanges
    assert "gup$hup" not in raised.value.exchanges[0].url


def test_send_timeout_is_transient(adapters, pointed_at, provider_server):
    # given
    provider = pointed_at("textlocal")
    adapters.GATEWAY_TIMEOUT_SECONDS = 0.2
    provider_server.script = [FakeResponse(200, {"status": "success"}, delay=1.0)]

    # when
    with pytest.raises(TransientSendError) as raised:
        provider.send(outbound())

    # then
    assert raised.value.code == "timeout"


def test_send_with_a_secret_missing_from_the_environment_is_permanent(pointed_at, monkeypatch):
    # given
    provider = pointed_at("textlocal")
    monkeypatch.delenv("TEXTLOCAL_API_KEY")

    # when / then
    with pytest.raises(PermanentSendError, match="TEXTLOCAL_API_KEY") as raised:
        provider.send(outbound())
    assert raised.value.code == "not_configured"


def test_shortcode_may_override_the_outbound_url_on_the_same_host(pointed_at, provider_server):
    # given
    provider = pointed_at("textlocal")
    provider_server.script = [FakeResponse(200, {"status": "success", "messages": [{"id": "77"}]})]
    options = {"outbound": {"url": f"{provider_server.url}/v2/send/", "params": {"test": "true"}}}

    # when
    result = provider.send(outbound(options=options))

    # then
    request = provider_server.requests[0]
    assert request.path == "/v2/send/"
    assert form(request)["test"] == "true"
    assert form(request)["apikey"] == "textlocal-api-key"
    assert result.provider_message_id == "77"


@pytest.mark.parametrize(
    "overrides",
    [
        # Another host would receive the aggregator's credentials.
        {"url": "http://localhost:9/send/"},
        {"url": "https://127.0.0.1/send/"},
        # The same host on another port is another origin (another service).
        {"url": "http://127.0.0.1:9/send/"},
        # Staff-edited data may not read the server's environment.
        {"params": {"message": "{env:DJANGO_SECRET_KEY}"}},
    ],
)
def test_shortcode_overrides_may_not_leak_secrets(pointed_at, provider_server, overrides):
    # given
    provider = pointed_at("textlocal")

    # when
    with pytest.raises(PermanentSendError) as raised:
        provider.send(outbound(options={"outbound": overrides}))

    # then
    assert raised.value.code == "bad_config"
    assert provider_server.requests == []


@pytest.mark.parametrize(
    "options,error",
    [
        ({"outbound": {"url": "https://collector.example.net/send/"}}, "not an allowed origin"),
        ({"outbound": {"params": {"apikey": "literal-api-key"}}}, "never secrets"),
        ({"outbound": {"headers": {"Authorization": "Basic abc"}}}, "never secrets"),
        ({"outbound": {"params": {"apikey": "{env:DJANGO_SECRET_KEY}"}}}, "never secrets"),
    ],
)
def test_shortcode_options_that_would_leak_are_refused_when_saved(pointed_at, options, error):
    # given
    provider = pointed_at("textlocal")
    # when
    errors = provider.config_errors(options)
    # then
    assert any(error in text for text in errors)


def test_shortcode_options_on_the_adapter_origin_are_accepted_when_saved(pointed_at, provider_server):
    provider = pointed_at("textlocal")
    assert provider.config_errors({"sender": "MYBRND", "outbound": {"url": f"{provider_server.url}/v2/send/"}}) == []


@pytest.mark.django_db
def test_deliver_end_to_end_then_receipt(pointed_at, provider_server, post_webhook):
    # given: a queued reply on a Textlocal shortcode
    pointed_at("textlocal")
    provider_server.script = [FakeResponse(200, {"status": "success", "messages": [{"id": "1151346216"}]})]
    message = OutboundMessageFactory(provider="textlocal", phone="+919876543210", provider_options={"sender": "MYBRND"})

    # when
    outcome = message_deliver(message_id=message.id, final_attempt=True)

    # then
    assert outcome == "sent"
    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == ("sent", "1151346216")
    sent = form(provider_server.requests[0])
    assert (sent["sender"], sent["custom"]) == ("MYBRND", str(message.uuid))
    receipt_url = sent["receipt_url"]
    assert (
        receipt_url == f"https://sms.example.com/webhooks/textlocal/status/?ref={message.uuid}&token={TEXTLOCAL_TOKEN}"
    )

    # when: Textlocal posts the receipt to that receipt_url
    response = post_webhook(
        receipt_url.removeprefix("https://sms.example.com"),
        f"number=919876543210&status=D&customID={message.uuid}&datetime=2024-06-06+13%3A47%3A19",
        sign=False,
    )

    # then
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered"

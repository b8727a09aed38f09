"""
Secrets never leave: every secret a provider reads is declared, and every declared secret
is masked wherever text is stored or logged; staff cannot send the gateway key elsewhere;
log lines carry no token and, above DEBUG, no whole phone number.
"""

import inspect
import json
import logging
import re
import socket
import sys
from urllib.parse import quote, quote_plus, urlencode

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model

from commands.models import Shortcode
from commands.tests.factories import ShortcodeFactory
from delivery.deliver import message_deliver
from delivery.log_filters import RedactingFilter
from delivery.models import ChannelLog, DeliveryReport, Message
from delivery.providers import _registry, all_providers, get_provider
from delivery.providers.adapter import ConfigurableProvider
from delivery.redaction import MASK, declared_secret_names
from delivery.statuses import Direction, Status
from delivery.tests.factories import OutboundMessageFactory

SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSWORD|AUTH")


def closed_port_url() -> str:
    """A loopback origin where nothing listens: every call there fails to connect."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# Every secret a provider reads is declared ---------------------------------------------


@pytest.mark.parametrize("provider", [p for p in all_providers() if not isinstance(p, ConfigurableProvider)])
def test_every_secret_setting_a_provider_module_reads_is_declared(provider):
    source = inspect.getsource(sys.modules[type(provider).__module__])
    read = {name for name in re.findall(r"settings\.([A-Z][A-Z0-9_]*)", source) if SECRET_NAME.search(name)}
    if "verify_webhook_token(" in source or hasattr(django_settings, f"{provider.slug.upper()}_WEBHOOK_TOKEN"):
        # the token it checks, which deliver.callback_url also puts in the URL we give the provider
        read.add(f"{provider.slug.upper()}_WEBHOOK_TOKEN")
    assert read <= set(provider.SECRET_SETTINGS)
    assert set(provider.SECRET_SETTINGS) <= declared_secret_names()[0]


@pytest.mark.parametrize("provider", [p for p in all_providers() if isinstance(p, ConfigurableProvider)])
def test_every_environment_variable_an_adapter_reads_is_declared(provider):
    referenced = set(re.findall(r"\{env:([A-Za-z_][A-Za-z0-9_]*)\}", json.dumps(provider.config)))
    assert referenced
    assert referenced <= set(provider.SECRET_ENV) <= declared_secret_names()[1]
    if provider.config.get("auth", {}).get("type", "token") == "token":
        assert f"{provider.slug.upper()}_WEBHOOK_TOKEN" in provider.SECRET_SETTINGS


def test_every_secret_looking_setting_is_declared():
    names = {name for name in dir(django_settings) if name.isupper() and re.search(r"(TOKEN|SECRET|_KEY)$", name)}
    # by the provider that reads it, or by the app that does (METRICS_TOKEN: delivery's /metrics)
    declared = {name for provider in all_providers() for name in provider.SECRET_SETTINGS}
    assert names - {"SECRET_KEY"} <= declared | declared_secret_names()[0]


# Every declared secret is masked everywhere --------------------------------------------


@pytest.fixture
def every_secret(settings, monkeypatch):
    """A distinct value for every declared secret (some need URL encoding), all APIs at a closed port."""
    _registry.cache_clear()
    all_providers()
    setting_names, env_names = declared_secret_names()
    values = {}
    for index, name in enumerate(sorted(setting_names | env_names)):
        # Plivo's SDK refuses an auth ID not shaped like one before it sends anything.
        value = f"MA{index:02d}SECRETAUTHIDXYZ00" if name == "PLIVO_AUTH_ID" else f"s{index:02d}-{name.lower()}@p/w+"
        values[name] = value
        if name in setting_names:
            setattr(settings, name, value)
        if name in env_names:
            monkeypatch.setenv(name, value)
    nowhere = closed_port_url()
    settings.TWILIO_ACCOUNT_SID = "AC" + "0" * 32
    for name in ("TWILIO_API_BASE", "PLIVO_API_BASE", "SINCH_API_BASE", "MSG91_API_BASE"):
        setattr(settings, name, nowhere)
    settings.SINCH_SERVICE_PLAN_ID = "plan-1"
    settings.GATEWAY_OUTBOUND_URL = f"{nowhere}/sms"
    settings.GATEWAY_TIMEOUT_SECONDS = 2
    settings.DELIVER_MAX_ATTEMPTS = 1
    yield values
    _registry.cache_clear()


def webhook_paths() -> list[str]:
    return [
        f"/webhooks/{provider.slug}/{kind}/"
        for provider in all_providers()
        if provider.receives_webhooks
        for kind in ("inbound", "status")
    ]


@pytest.mark.django_db
def test_no_declared_secret_is_stored_or_logged_anywhere(every_secret, client, caplog):
    caplog.set_level(logging.INFO)
    secrets = list(every_secret.values())
    assert len(secrets) >= 12
    carried = {f"s{index}": value for index, value in enumerate(secrets)}
    # when: webhooks to every provider carry every secret in the URL, the headers and the body
    for path in webhook_paths():
        for authenticated in (False, True):
            query = {**carried, **({"token": every_secret.get(path.split("/")[2].upper() + "_WEBHOOK_TOKEN", "")})}
            headers = {f"HTTP_X_S{index}": value for index, value in enumerate(secrets)}
            if authenticated:
                headers["HTTP_X_WEBHOOK_SECRET"] = every_secret["WEBHOOK_SECRET"]
            client.post(
                f"{path}?{urlencode(query)}",
                json.dumps({"from": "+919876543210", "to": "57675", "body": " ".join(secrets), **carried}),
                content_type="application/json",
                REMOTE_ADDR="127.0.0.1",
                HTTP_AUTHORIZATION=f"Bearer {secrets[0]}",
                **headers,
            )
    # and: a delivery report that echoes every secret
    client.post(
        f"/webhooks/generic/status/?{urlencode(carried)}",
        json.dumps({"id": "gw-9", "status": "failed", "error_message": " ".join(secrets), "extra": carried}),
        content_type="application/json",
        HTTP_X_WEBHOOK_SECRET=every_secret["WEBHOOK_SECRET"],
    )
    # and: a send through every HTTP provider fails to connect, its error text quoting the
    # request (a bind's sends are its own process's: smpp_gateway's tests)
    http_senders = [provider for provider in all_providers() if not provider.sends_through_bind]
    for provider in http_senders:
        message = OutboundMessageFactory(provider=provider.slug, body="hello")
        message_deliver(message_id=message.id, final_attempt=True)
    # then
    assert DeliveryReport.objects.filter(provider="generic").exists()
    assert Message.objects.filter(direction=Direction.OUTBOUND, status=Status.FAILED).count() >= len(http_senders) - 1
    stored = [
        *(f"{r.url} {r.request} {r.response} {r.error}" for r in ChannelLog.objects.all()),
        # An inbound SMS's own text is what the subscriber wrote; what we write is masked.
        *(m.error_message for m in Message.objects.all()),
        *(f"{r.error_message} {json.dumps(r.raw_payload)}" for r in DeliveryReport.objects.all()),
        *(record.getMessage() for record in caplog.records),
    ]
    text = "\n".join(stored)
    assert MASK in text
    leaked = {
        name
        for name, value in every_secret.items()
        if any(form in text for form in (value, quote(value, safe=""), quote_plus(value)))
    }
    assert leaked == set()


# Log lines ------------------------------------------------------------------------------


def record(msg: str, *args, name: str = "delivery", level: int = logging.INFO, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)


def test_log_lines_mask_phone_numbers_but_the_last_four_digits():
    line = record("reply to %s refused; sender %s", "+919876543210", "919812345678")
    RedactingFilter(mask_phones=True).filter(line)
    assert line.getMessage() == "reply to +91******3210 refused; sender ********5678"


def test_at_debug_phone_numbers_stay_whole(caplog):
    logger = logging.getLogger()
    saved = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        line = record("reply to %s", "+919876543210")
        RedactingFilter().filter(line)
    finally:
        logger.setLevel(saved)
    assert line.getMessage() == "reply to +919876543210"
    line = record("reply to %s", "+919876543210")
    RedactingFilter().filter(line)
    assert line.getMessage() == "reply to +91******3210"


def test_log_lines_mask_declared_secrets_in_arguments_and_exception_text(settings):
    settings.MSG91_AUTH_KEY = "msg91-auth-key-123"
    try:
        raise ValueError("connection to /api?authkey=msg91-auth-key-123 failed")
    except ValueError:
        line = record("send failed: %r", {"key": "msg91-auth-key-123"}, exc_info=sys.exc_info())
    RedactingFilter().filter(line)
    rendered = logging.Formatter().format(line)
    assert "msg91-auth-key-123" not in rendered
    assert "send failed: {'key': '********'}" in rendered


@pytest.mark.parametrize(
    "request_line",
    [
        "POST /webhooks/msg91/status/?token=anything-at-all&ref=5 HTTP/1.1",
        "GET /webhooks/gupshup/status/?externalId=1&Token=anything-at-all HTTP/1.1",
        "POST /webhooks/x/?api_key=anything-at-all HTTP/1.1",
    ],
)
def test_runserver_access_log_shows_no_token(request_line):
    # A record shaped like django.core.servers.basehttp's access log line.
    line = record('"%s" %s %s', request_line, "403", "52", name="django.server")
    line.status_code = 403
    for handler in logging.getLogger("django.server").handlers:
        handler.filter(line)
    assert "anything-at-all" not in line.getMessage()
    assert f"={MASK}" in line.getMessage()


def test_the_console_handler_filters_what_reaches_the_log(caplog, settings):
    settings.GATEWAY_API_KEY = "gateway-api-key-9"
    caplog.set_level(logging.INFO)
    logging.getLogger("delivery.deliver").info("to %s with %s", "+919876543210", "gateway-api-key-9")
    assert caplog.records[-1].getMessage() == f"to +91******3210 with {MASK}"


# Staff cannot send the gateway key elsewhere --------------------------------------------


@pytest.fixture
def staff_client(client, db):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(admin)
    return client


def shortcode_form(provider_config: dict) -> dict:
    """The shortcode admin's form, the generic provider's options typed into their fields."""
    data = {
        "number": "56161",
        "name": "Bank",
        "active": "on",
        "country": "IN",
        "dlt_bound": "false",
        "provider": "generic",
        "menu_text": "menu",
        "unknown_text": "unknown",
        "help_text": "help",
        "opt_out_reply": "bye",
        "opt_in_reply": "welcome back",
        "inbound_limit_per_minute": "20",
        "max_mps": "30",
        "segment_limit": "4",
        "session_ttl": "300",
        "catch_all_config": "{}",
        "commands-TOTAL_FORMS": "0",
        "commands-INITIAL_FORMS": "0",
    }
    return {**data, **{f"option__generic__{name}": value for name, value in provider_config.items()}}


@pytest.mark.parametrize(
    "provider_config,error",
    [
        ({"outbound_url": "https://collector.example.net/sms"}, "not an allowed origin"),
        ({"outbound_url": "https://gateway.example.com:8443/sms"}, "not an allowed origin"),
        ({"outbound_url": "http://gateway.example.com/sms"}, "not an allowed origin"),
        # The form has no field a key could be typed into, only the name of a variable.
        ({"api_key_env": "literal-key-value"}, "GATEWAY_"),
        ({"api_key_env": "DATABASE_URL"}, "GATEWAY_"),
    ],
)
def test_staff_cannot_save_an_outbound_url_off_the_allowlist_or_a_literal_secret(
    staff_client, settings, provider_config, error
):
    # given
    settings.GATEWAY_OUTBOUND_URL = "https://gateway.example.com/v1/sms"
    settings.GATEWAY_ALLOWED_ORIGINS = ["https://gateway.example.com"]
    # when
    response = staff_client.post("/admin/commands/shortcode/add/", shortcode_form(provider_config))
    # then
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Shortcode.objects.filter(number="56161").exists()


def test_staff_may_save_an_allowed_origin_and_an_env_reference(staff_client, settings):
    settings.GATEWAY_OUTBOUND_URL = "https://gateway.example.com/v1/sms"
    settings.GATEWAY_ALLOWED_ORIGINS = ["https://gateway.example.com", "https://backup.example.com"]
    config = {"outbound_url": "https://backup.example.com/sms", "api_key_env": "GATEWAY_BACKUP_KEY"}
    response = staff_client.post("/admin/commands/shortcode/add/", shortcode_form(config))
    assert response.status_code == 302
    assert Shortcode.objects.get(number="56161").provider_config == config


@pytest.mark.django_db
def test_a_send_to_an_origin_off_the_allowlist_fails_and_reaches_nobody(settings, provider_server):
    # given: options saved before the allowlist changed
    settings.GATEWAY_OUTBOUND_URL = "https://gateway.example.com/v1/sms"
    settings.GATEWAY_ALLOWED_ORIGINS = ["https://gateway.example.com"]
    settings.GATEWAY_API_KEY = "gateway-api-key-9"
    message = OutboundMessageFactory(provider_options={"outbound_url": f"{provider_server.url}/steal"})
    # when
    outcome = message_deliver(message_id=message.id)
    # then
    assert outcome == "failed"
    message.refresh_from_db()
    assert message.error_code == "bad_config"
    assert provider_server.requests == []


@pytest.mark.django_db
def test_a_shortcode_key_is_read_from_the_environment_variable_it_names(settings, provider_server, monkeypatch):
    # given
    settings.GATEWAY_OUTBOUND_URL = "https://gateway.example.com/v1/sms"
    settings.GATEWAY_ALLOWED_ORIGINS = ["https://gateway.example.com", provider_server.url]
    monkeypatch.setenv("GATEWAY_BACKUP_KEY", "backup-key-value")
    message = OutboundMessageFactory(
        provider_options={"outbound_url": f"{provider_server.url}/sms", "api_key_env": "GATEWAY_BACKUP_KEY"}
    )
    # when
    assert message_deliver(message_id=message.id) == "sent"
    # then
    assert provider_server.requests[0].headers["Authorization"] == "Bearer backup-key-value"
    log = ChannelLog.objects.get(kind="send")
    assert "backup-key-value" not in log.request + log.url


def test_the_shortcode_model_checks_its_provider_options(settings):
    from django.core.exceptions import ValidationError

    settings.GATEWAY_OUTBOUND_URL = "https://gateway.example.com/v1/sms"
    settings.GATEWAY_ALLOWED_ORIGINS = []
    shortcode = ShortcodeFactory.build(provider="generic", provider_config={"outbound_url": "https://evil.example/x"})
    with pytest.raises(ValidationError) as raised:
        shortcode.clean()
    assert "provider_config" in raised.value.message_dict
    shortcode.provider_config = {"outbound_url": "https://gateway.example.com/other"}
    shortcode.clean()
    assert get_provider("generic").config_errors({"sender": "ACME"}) == []

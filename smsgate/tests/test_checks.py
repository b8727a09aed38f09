"""
`manage.py check` names what a deployment is missing: PUBLIC_BASE_URL (smsgate.W001), and
credentials of an active shortcode's provider, to send (W002) and to accept its webhooks
(W003). Run through the check registry, as `manage.py check --database default` runs them.
"""

import pytest
from django.core import checks

from commands.tests.factories import ShortcodeFactory


def warnings_of(*, databases=("default",)) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in checks.run_checks(databases=list(databases) if databases else None):
        if message.id.startswith("smsgate."):
            found.setdefault(message.id, []).append(message.msg)
    return found


@pytest.fixture
def twilio_configured(settings):
    settings.TWILIO_ACCOUNT_SID = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    settings.TWILIO_AUTH_TOKEN = "test-twilio-auth-token"
    return settings


@pytest.mark.django_db
def test_a_configured_deployment_has_no_warnings(twilio_configured):
    ShortcodeFactory(number="57675", provider="twilio")
    assert warnings_of() == {}


@pytest.mark.django_db
def test_unset_public_base_url_is_named_with_what_breaks(settings):
    settings.PUBLIC_BASE_URL = ""
    found = warnings_of()
    assert list(found) == ["smsgate.W001"]
    assert "PUBLIC_BASE_URL is not set" in found["smsgate.W001"][0]
    assert "status callback" in found["smsgate.W001"][0] and "signatures" in found["smsgate.W001"][0]


def test_public_base_url_is_checked_without_a_database(settings):
    # No django_db mark: any check touching the database here would fail the test.
    settings.PUBLIC_BASE_URL = ""
    assert list(warnings_of(databases=None)) == ["smsgate.W001"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "provider,unset,warning,says",
    [
        ("twilio", "TWILIO_ACCOUNT_SID", "smsgate.W002", "TWILIO_ACCOUNT_SID not set: every send fails"),
        ("sinch", "SINCH_WEBHOOK_TOKEN", "smsgate.W003", "SINCH_WEBHOOK_SECRET or SINCH_WEBHOOK_TOKEN not set"),
        ("plivo", "PLIVO_AUTH_ID", "smsgate.W002", "PLIVO_AUTH_ID"),
        ("msg91", "MSG91_WEBHOOK_TOKEN", "smsgate.W003", "MSG91_WEBHOOK_TOKEN not set"),
        ("gupshup", "GUPSHUP_WEBHOOK_TOKEN", "smsgate.W003", "GUPSHUP_WEBHOOK_TOKEN not set"),
        ("generic", "WEBHOOK_SECRET", "smsgate.W003", "WEBHOOK_SECRET not set"),
    ],
)
def test_an_active_shortcode_whose_provider_lacks_a_credential_is_named(
    settings, monkeypatch, provider, unset, warning, says
):
    # given: the provider fully configured but for one setting
    # (an adapter's send credentials are the environment variables its outbound request reads)
    monkeypatch.setenv("GUPSHUP_USERID", "gupshup-user")
    monkeypatch.setenv("GUPSHUP_PASSWORD", "gupshup-password")
    settings.TWILIO_ACCOUNT_SID = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    settings.TWILIO_AUTH_TOKEN = "test-twilio-auth-token"
    settings.PLIVO_AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
    settings.PLIVO_AUTH_TOKEN = "test-plivo-auth-token"
    settings.SINCH_SERVICE_PLAN_ID = "sinch-plan"
    settings.SINCH_API_TOKEN = "sinch-api-token"
    settings.SINCH_WEBHOOK_SECRET = ""
    settings.SINCH_WEBHOOK_TOKEN = "sinch-token"
    settings.MSG91_AUTH_KEY = "msg91-auth-key"
    settings.MSG91_WEBHOOK_TOKEN = "msg91-token"
    settings.GUPSHUP_WEBHOOK_TOKEN = "gupshup-token"
    settings.GATEWAY_OUTBOUND_URL = "http://127.0.0.1:9/send"
    setattr(settings, unset, "")
    ShortcodeFactory(number="57675", provider=provider)

    # when
    found = warnings_of()

    # then: one warning, naming the shortcode, its provider and the missing setting
    assert list(found) == [warning]
    (text,) = found[warning]
    assert text.startswith(f"Shortcode 57675 (provider '{provider}')")
    assert says in text


@pytest.mark.django_db
def test_inactive_shortcodes_and_debug_are_quiet(settings):
    settings.TWILIO_ACCOUNT_SID = ""
    ShortcodeFactory(number="57675", provider="twilio", active=False)
    assert warnings_of() == {}

    ShortcodeFactory(number="57676", provider="twilio")
    settings.DEBUG = True
    assert warnings_of() == {}


@pytest.mark.django_db
def test_a_shortcode_naming_no_known_provider_is_named(settings):
    ShortcodeFactory(number="57675", provider="nosuch")
    found = warnings_of()
    assert list(found) == ["smsgate.W002"]
    assert "no such provider" in found["smsgate.W002"][0]


def test_checks_stay_off_the_database_unless_asked():
    # No django_db mark: any check touching the database here would fail the test.
    assert checks.run_checks(databases=None) == []

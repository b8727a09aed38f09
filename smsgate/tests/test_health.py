import contextlib

import pytest

from commands.tests.factories import ShortcodeFactory
from conftest import broker_down
from smsgate import health


@pytest.mark.django_db
def test_health_is_200_when_everything_answers(client):
    response = client.get("/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "broker"}


@pytest.mark.django_db
def test_health_is_503_naming_a_broker_that_does_not_answer(client, settings):
    from smsgate.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        with broker_down():
            response = client.get("/health/")
    finally:
        app.conf.task_always_eager = saved
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]


@pytest.mark.django_db
def test_health_names_a_cache_that_does_not_answer(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    from django.core.cache import caches

    with contextlib.suppress(AttributeError, KeyError):
        del caches["default"]
    response = client.get("/health/")
    assert response.status_code == 503
    assert "cache" in response.json()["failed"]


@pytest.mark.django_db
def test_health_says_which_providers_refuse_webhooks_for_lack_of_a_secret(client, settings):
    settings.TWILIO_AUTH_TOKEN = ""
    settings.PLIVO_AUTH_TOKEN = "set"
    settings.SINCH_WEBHOOK_SECRET = settings.SINCH_WEBHOOK_TOKEN = ""
    webhooks = client.get("/health/").json()["webhooks"]
    assert webhooks["twilio"] == "TWILIO_AUTH_TOKEN not set: every webhook is refused"
    assert webhooks["plivo"] == "ok"
    assert webhooks["generic"] == "ok"  # WEBHOOK_SECRET is set for the tests
    assert "SINCH_WEBHOOK_SECRET or SINCH_WEBHOOK_TOKEN" in webhooks["sinch"]
    assert webhooks["gupshup"] == "GUPSHUP_WEBHOOK_TOKEN not set: every webhook is refused"
    assert "console" not in webhooks


def test_health_only_answers_get(client):
    assert client.post("/health/").status_code == 405


def test_check_functions_are_named():
    assert set(health.CHECKS) == {"database", "cache", "broker"}


@pytest.mark.django_db
def test_health_gives_each_dependency_ok_and_its_latency(client):
    checks = client.get("/health/").json()["checks"]
    for name in ("database", "cache", "broker"):
        assert checks[name]["ok"] is True
        assert isinstance(checks[name]["latency_ms"], float) and checks[name]["latency_ms"] >= 0
    # no CELERY_BROKER_URL in the tests: nothing to reach, and the answer says so
    assert checks["broker"]["detail"] == "ok (no broker: tasks run in-process)"


@pytest.mark.django_db
def test_a_failed_dependency_carries_its_error_and_latency(client):
    from smsgate.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        with broker_down():
            body = client.get("/health/").json()
    finally:
        app.conf.task_always_eager = saved
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["detail"].startswith("failed: ")
    assert body["checks"]["broker"]["latency_ms"] >= 0
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_health_lists_each_provider_with_its_credentials_and_the_shortcodes_using_it(client, settings):
    # given: twilio used by an active shortcode but missing its account SID; plivo only by an inactive one
    ShortcodeFactory(number="57675", provider="twilio")
    ShortcodeFactory(number="57676", provider="twilio")
    ShortcodeFactory(number="57677", provider="plivo", active=False)
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = "set"
    settings.TWILIO_FROM = "+15005550006"
    settings.PLIVO_AUTH_ID = settings.PLIVO_AUTH_TOKEN = "set"
    # when
    response = client.get("/health/")
    # then: informational only, the answer stays 200
    assert response.status_code == 200
    providers = response.json()["providers"]
    assert providers["twilio"] == {
        "ok": False,
        "in_use": ["57675", "57676"],
        "send": "TWILIO_ACCOUNT_SID not set: every send fails",
        "webhooks": "ok",
    }
    assert providers["plivo"] == {"ok": True, "in_use": [], "send": "ok", "webhooks": "ok"}
    assert set(providers) == set(settings.SMS_PROVIDER_SLUGS)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health/live", "/health/live/"])
def test_live_answers_without_touching_any_dependency(client, settings, django_assert_num_queries, path):
    # even with a cache that does not answer: it checks nothing
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    from django.core.cache import caches

    with contextlib.suppress(AttributeError, KeyError):
        del caches["default"]
    with django_assert_num_queries(0):
        response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_live_only_answers_get(client):
    assert client.post("/health/live").status_code == 405

import contextlib

import pytest

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

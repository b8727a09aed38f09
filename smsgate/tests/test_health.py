import contextlib

import pytest

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

    saved = app.conf.task_always_eager, app.conf.broker_url
    app.conf.task_always_eager = False
    app.conf.broker_url = "redis://127.0.0.1:9/0"  # nothing listens there
    try:
        response = client.get("/health/")
    finally:
        app.conf.task_always_eager, app.conf.broker_url = saved
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


def test_health_only_answers_get(client):
    assert client.post("/health/").status_code == 405


def test_check_functions_are_named():
    assert set(health.CHECKS) == {"database", "cache", "broker"}

import pytest
from rest_framework.test import APIClient

from api.tests.factories import ApiClientFactory
from commands.tests.factories import ShortcodeFactory

CALLBACK_SECRET = "callback-secret-for-tests"


@pytest.fixture
def shortcode(db):
    return ShortcodeFactory(number="57675", segment_limit=2)


@pytest.fixture
def api_client(shortcode, monkeypatch):
    """An API client of shortcode 57675 whose callbacks are signed with CALLBACK_SECRET."""
    monkeypatch.setenv("CALLBACK_SECRET_TESTS", CALLBACK_SECRET)
    return ApiClientFactory(shortcodes=[shortcode], callback_secret_env="CALLBACK_SECRET_TESTS")


@pytest.fixture
def api(api_client):
    """DRF's test client, sending as `api_client`."""
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Token {api_client.token}")
    return http


@pytest.fixture(autouse=True)
def _callbacks_reach_loopback(settings):
    # The real local receivers of these tests listen on 127.0.0.1, a private address.
    settings.CALLBACK_ALLOWED_ORIGINS = ["http://127.0.0.1:*"]

"""API clients: created in the admin with a token shown once, limited to their shortcodes and request rate."""

import re

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from api.models import ApiClient, CallbackAttempt, IdempotencyKey, token_hash
from api.tests.factories import ApiClientFactory
from commands.tests.factories import ShortcodeFactory
from delivery.models import Message

pytestmark = pytest.mark.django_db

URL = "/api/v1/messages/"


@pytest.fixture
def superuser():
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")


def bearer(token: str) -> APIClient:
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return http


def send(http, shortcode="57675"):
    return http.post(URL, {"to": "+919876543210", "shortcode": shortcode, "text": "Hi"}, format="json")


# The admin ------------------------------------------------------------------------------


def test_a_client_created_in_the_admin_sees_its_token_once(client, superuser, shortcode):
    # given
    client.force_login(superuser)

    # when
    response = client.post(
        "/admin/api/apiclient/add/",
        {"name": "Billing", "active": "on", "shortcodes": [shortcode.pk], "rate": "600/min", "callback_secret_env": ""},
    )

    # then: the page shows the token, which works, and only its hash is stored
    assert response.status_code == 200, response.content[:2000]
    assert "no-store" in response["Cache-Control"]
    token = re.search(r'<code id="api-token"[^>]*>([^<]+)</code>', response.content.decode()).group(1)
    stored = ApiClient.objects.get(name="Billing")
    assert stored.token_hash == token_hash(token)
    assert token not in str(list(ApiClient.objects.values()))
    assert send(bearer(token)).status_code == 202

    # and the client's page never shows it again
    page = client.get(f"/admin/api/apiclient/{stored.pk}/change/").content.decode()
    assert token not in page
    assert stored.token_prefix in page


def test_a_new_token_replaces_the_old_one(client, superuser, api_client):
    client.force_login(superuser)
    old = api_client.token

    response = client.post("/admin/api/apiclient/", {"action": "token_reissue", "_selected_action": [api_client.pk]})

    new = re.search(r'<code id="api-token"[^>]*>([^<]+)</code>', response.content.decode()).group(1)
    assert new != old
    assert send(bearer(old)).status_code == 401
    assert send(bearer(new)).status_code == 202


@pytest.mark.parametrize(
    "fields, error_field",
    [
        ({"rate": "lots"}, "rate"),
        ({"rate": "0/min"}, "rate"),
        ({"callback_secret_env": "DJANGO_SECRET_KEY"}, "callback_secret_env"),  # only CALLBACK_SECRET_* names
        ({"callback_secret_env": "CALLBACK_SECRET_lower"}, "callback_secret_env"),
    ],
)
def test_the_admin_refuses_bad_settings(client, superuser, shortcode, fields, error_field):
    client.force_login(superuser)
    data = {"name": "X", "active": "on", "shortcodes": [shortcode.pk], "rate": "600/min", **fields}

    response = client.post("/admin/api/apiclient/add/", data)

    assert response.status_code == 200
    assert error_field in response.context["adminform"].form.errors
    assert not ApiClient.objects.exists()


@pytest.mark.parametrize("path", ["/admin/api/apiclient/", "/admin/api/callbackattempt/", "/admin/api/idempotencykey/"])
def test_the_admin_lists_load(client, superuser, api, path, provider_server, django_capture_on_commit_callbacks):
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        api.post(
            URL,
            {"to": "+919876543210", "shortcode": "57675", "text": "Hi", "callback_url": f"{provider_server.url}/s"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k-1",
        )

    response = client.get(path)

    assert response.status_code == 200
    assert CallbackAttempt.objects.exists() and IdempotencyKey.objects.exists()


def test_callback_attempts_are_read_only_in_the_admin(
    client, superuser, api, provider_server, django_capture_on_commit_callbacks
):
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        api.post(
            URL,
            {"to": "+919876543210", "shortcode": "57675", "text": "Hi", "callback_url": f"{provider_server.url}/s"},
            format="json",
        )
    attempt = CallbackAttempt.objects.first()

    page = client.get(f"/admin/api/callbackattempt/{attempt.pk}/change/")

    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.get("/admin/api/callbackattempt/add/").status_code == 403


# Shortcodes and rates --------------------------------------------------------------------


def test_each_client_sends_only_from_its_shortcodes():
    # given: two clients, each with its own shortcode
    first, second = ShortcodeFactory(number="57001"), ShortcodeFactory(number="57002")
    alpha, beta = ApiClientFactory(shortcodes=[first]), ApiClientFactory(shortcodes=[second])

    # then
    assert send(bearer(alpha.token), "57001").status_code == 202
    assert send(bearer(beta.token), "57002").status_code == 202
    refused = send(bearer(alpha.token), "57002")
    assert refused.status_code == 403
    assert refused.json()["code"] == "shortcode_not_allowed"
    assert send(bearer(beta.token), "57001").status_code == 403
    assert Message.objects.count() == 2


def test_a_client_without_shortcodes_sends_nothing():
    ShortcodeFactory(number="57675")
    nobody = ApiClientFactory(shortcodes=[])

    assert send(bearer(nobody.token)).status_code == 403


@pytest.mark.parametrize("rate, allowed", [("3/min", 3), ("1/s", 1), ("5/hour", 5)])
def test_each_client_has_its_own_request_rate(shortcode, rate, allowed):
    limited = ApiClientFactory(shortcodes=[shortcode], rate=rate)
    other = ApiClientFactory(shortcodes=[shortcode], rate=rate)
    http = bearer(limited.token)

    answers = [http.get(URL).status_code for _ in range(allowed + 2)]

    assert answers == [200] * allowed + [429, 429]
    over = http.get(URL)
    assert over.json()["code"] == "throttled"
    assert int(over["Retry-After"]) >= 1
    assert bearer(other.token).get(URL).status_code == 200  # counted per client


def test_a_staff_session_is_not_an_api_credential(client, superuser):
    client.force_login(superuser)

    response = client.get(URL)

    assert response.status_code == 401

"""POST /send-sms: the seed's `{to, text}` (or `message`), answered 202 with the message id."""

from urllib.parse import urlencode

import pytest

from commands.tests.factories import ShortcodeFactory
from delivery.models import Message

pytestmark = pytest.mark.django_db

URL = "/send-sms"


@pytest.mark.parametrize(
    "body, fmt",
    [
        ({"to": "+919876543210", "text": "Your OTP is 4821"}, "json"),
        ({"to": "+919876543210", "message": "Your OTP is 4821"}, "json"),
        ({"to": "9876543210", "text": "Your OTP is 4821"}, "json"),
        ({"to": 919876543210, "text": "Your OTP is 4821"}, "json"),  # the seed's clients sent digits as numbers
        ({"to": "+919876543210", "message": "Your OTP is 4821"}, "form"),
    ],
)
def test_the_seed_request_is_accepted_with_the_message_id(api, body, fmt):
    if fmt == "json":
        response = api.post(URL, body, format="json")
    else:
        response = api.generic("POST", URL, urlencode(body), content_type="application/x-www-form-urlencoded")

    assert response.status_code == 202, response.json()
    answer = response.json()
    assert answer["id"] == answer["message_id"]
    message = Message.objects.get(id=answer["id"])
    assert (message.phone, message.shortcode, message.body) == ("+919876543210", "57675", "Your OTP is 4821")
    assert answer["status"] == "queued"


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"text": "Hi"}, 400, "invalid"),
        ({"to": "+919876543210"}, 400, "invalid"),
        ({"to": "12", "text": "Hi"}, 400, "invalid_number"),
        ({"to": -919876543210, "text": "Hi"}, 400, "invalid"),
        ({"to": True, "text": "Hi"}, 400, "invalid"),
        ({"to": "+919876543210", "text": 42}, 400, "invalid"),
        ({"to": "+919876543210", "text": "x" * 400}, 422, "too_long"),
        ({"to": "+919876543210", "text": "Hi", "shortcode": "57676"}, 403, "shortcode_not_allowed"),
    ],
)
def test_the_same_refusals_as_the_api(api, body, status, code):
    ShortcodeFactory(number="57676")

    response = api.post(URL, body, format="json")

    assert response.status_code == status
    assert response.json()["code"] == code


def test_a_client_of_several_shortcodes_names_one(api, api_client):
    api_client.shortcodes.add(ShortcodeFactory(number="57676"))

    unnamed = api.post(URL, {"to": "+919876543210", "text": "Hi"}, format="json")
    named = api.post(URL, {"to": "+919876543210", "text": "Hi", "shortcode": "57676"}, format="json")

    assert (unnamed.status_code, unnamed.json()["code"]) == (400, "shortcode_required")
    assert named.status_code == 202
    assert Message.objects.get().shortcode == "57676"


def test_it_needs_a_token(client, shortcode):
    response = client.post(URL, {"to": "+919876543210", "text": "Hi"}, content_type="application/json")

    assert response.status_code == 401
    assert not Message.objects.exists()


def test_a_bearer_token_as_the_seed_clients_sent_it(api, api_client):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_client.token}")

    assert api.post(URL, {"to": "+919876543210", "text": "Hi"}, format="json").status_code == 202


@pytest.mark.parametrize("fmt", ["json", "form"])
def test_an_empty_text_is_refused_even_beside_a_message(api, fmt):
    # An empty form value is an empty text, as in JSON: never taken for "no text" with the message sent instead.
    body = {"to": "+919876543210", "text": "", "message": "Your OTP is 4821"}
    if fmt == "json":
        response = api.post(URL, body, format="json")
    else:
        response = api.generic("POST", URL, urlencode(body), content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert "text" in str(response.json())
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "form",
    [
        "to=%2B919876543210&text=Hello&text=Bye",  # a field given twice
        "to=%2B919876543210&to=%2B919812345678&text=Hello",
        "to=-2036862100&text=Hello",  # a negative number
    ],
)
def test_a_form_that_is_not_one_request_is_refused(api, form):
    response = api.generic("POST", URL, form, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert not Message.objects.exists()

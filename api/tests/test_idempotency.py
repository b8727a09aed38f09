"""Idempotency-Key: a repeat gets the first answer and sends nothing new, also when repeats race."""

import datetime as dt
import json
import threading
import urllib.error
import urllib.request

import pytest
from django.utils import timezone
from freezegun import freeze_time

from api.idempotency import idempotency_keys_purge
from api.models import IdempotencyKey
from api.tests.factories import ApiClientFactory
from delivery.models import Message
from delivery.suppression import suppression_add

URL = "/api/v1/messages/"
BODY = {"to": "+919876543210", "shortcode": "57675", "text": "Your OTP is 4821", "reference": "otp-1"}


def post(api, body=None, key="key-1", path=URL):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post(path, body or BODY, format="json", **headers)


@pytest.mark.django_db
def test_a_repeat_gets_the_first_answer_and_sends_nothing(api):
    first = post(api)
    again = post(api, {**BODY})  # same content, keys in another order count the same
    reordered = post(api, dict(reversed(list(BODY.items()))))

    assert first.status_code == again.status_code == reordered.status_code == 202
    assert first.json() == again.json() == reordered.json()
    assert "Idempotent-Replayed" not in first
    assert again["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "other",
    [
        {**BODY, "text": "Your OTP is 9999"},
        {**BODY, "to": "+919876500000"},
        {k: v for k, v in BODY.items() if k != "reference"},
    ],
)
def test_the_same_key_with_another_body_is_409(api, other):
    post(api)

    response = post(api, other)

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_on_another_endpoint_is_409(api):
    post(api)

    response = post(api, {"to": BODY["to"], "text": BODY["text"]}, path="/send-sms")

    assert response.status_code == 409


@pytest.mark.django_db
def test_a_refusal_is_replayed_too(api):
    suppression_add(phone=BODY["to"], shortcode="57675", keyword="STOP")

    first, again = post(api), post(api)

    assert first.status_code == again.status_code == 422
    assert first.json() == again.json()
    assert first.json()["code"] == "suppressed"
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_a_validation_error_is_kept_for_the_key(api):
    bad = {**BODY, "to": ""}

    first, again = post(api, bad), post(api, bad)

    assert first.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_keys_belong_to_one_client(api, shortcode):
    other = ApiClientFactory(shortcodes=[shortcode])
    post(api)
    api.credentials(HTTP_AUTHORIZATION=f"Token {other.token}")

    response = post(api)

    assert response.status_code == 202
    assert "Idempotent-Replayed" not in response
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_without_a_key_each_request_sends(api):
    post(api, key=None)
    post(api, key=None)

    assert Message.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "naïve"])
def test_a_malformed_key_is_400(api, key):
    response = post(api, key=key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_keys_are_kept_24_hours_then_purged(api):
    start = timezone.now()
    with freeze_time(start):
        post(api)
    with freeze_time(start + dt.timedelta(hours=23, minutes=59)):
        assert post(api)["Idempotent-Replayed"] == "true"
        assert idempotency_keys_purge() == 0
    with freeze_time(start + dt.timedelta(hours=24, minutes=1)):
        # an expired key is a new one: this request sends again and keeps the key afresh
        assert "Idempotent-Replayed" not in post(api)
        assert Message.objects.count() == 2
    with freeze_time(start + dt.timedelta(hours=48, minutes=2)):
        assert idempotency_keys_purge() == 1
    assert not IdempotencyKey.objects.exists()


# Racing repeats: real requests, from threads, to a live server ---------------------------


def race(base_url: str, token: str, bodies: list[dict], key: str = "race-1") -> list[tuple[int, dict]]:
    """POST the bodies at once, one thread each, all with `key`; the answers in order."""
    answers: list = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def one(n: int) -> None:
        request = urllib.request.Request(
            base_url + URL,
            data=json.dumps(bodies[n]).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Token {token}", "Idempotency-Key": key},
            method="POST",
        )
        start.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answers[n] = (response.status, json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            answers[n] = (exc.code, json.loads(exc.read()))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def assert_one_sent(answers: list[tuple[int, dict]]) -> None:
    assert {status for status, _ in answers} == {202}
    assert len({body["id"] for _, body in answers}) == 1
    assert Message.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_racing_repeats_send_once(live_server, api_client):
    answers = race(live_server.url, api_client.token, [BODY] * 8)

    assert_one_sent(answers)


@pytest.mark.django_db(transaction=True)
def test_a_racing_repeat_with_another_body_is_409(live_server, api_client):
    answers = race(live_server.url, api_client.token, [BODY, {**BODY, "text": "other"}])

    assert sorted(status for status, _ in answers) == [202, 409]
    assert Message.objects.count() == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_racing_repeats_send_once_on_postgres(live_server, api_client, celery_worker):
    answers = race(live_server.url, api_client.token, [BODY] * 16)

    assert_one_sent(answers)

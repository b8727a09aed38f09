"""Status callbacks: POSTed to a real local receiver, signed, retried with backoff, kept for the admin."""

import datetime as dt
import json

import pytest
from django.utils import timezone
from freezegun import freeze_time

from api.callbacks import callback_sweep
from api.models import CallbackAttempt
from api.tasks import callback_deliver
from api.tests.conftest import CALLBACK_SECRET
from conftest import FakeResponse
from delivery.models import DeliveryReport, Message
from delivery.providers.base import StatusUpdate
from delivery.reports import delivery_report_record, delivery_reports_apply_pending
from delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_valid
from delivery.statuses import Status

pytestmark = pytest.mark.django_db

URL = "/api/v1/messages/"
PHONE = "+919876543210"


def send_with_callback(api, url, capture, **fields):
    with capture(execute=True):
        response = api.post(
            URL,
            {
                "to": PHONE,
                "shortcode": "57675",
                "text": "Hello",
                "reference": "order-17",
                "callback_url": url,
                **fields,
            },
            format="json",
        )
    assert response.status_code in (202, 422), response.json()
    return response.json()


def signed_by_us(request) -> bool:
    return signature_valid(
        secret=CALLBACK_SECRET,
        body=request.body,
        timestamp=request.headers[TIMESTAMP_HEADER],
        signature=request.headers[SIGNATURE_HEADER],
    )


def test_each_status_change_is_posted_signed(api, provider_server, django_capture_on_commit_callbacks):
    # when: the console provider sends at once, then a delivery report arrives
    message_id = send_with_callback(api, f"{provider_server.url}/status", django_capture_on_commit_callbacks)["id"]
    message = Message.objects.get(id=message_id)
    with django_capture_on_commit_callbacks(execute=True):
        delivery_report_record(
            provider="console",
            update=StatusUpdate(status=Status.DELIVERED, provider_status="DELIVRD", reference=str(message.uuid)),
        )

    # then
    received = provider_server.wait_for(3)
    assert [r.json()["status"] for r in received] == ["queued", "sent", "delivered"]
    assert all(r.path == "/status" and r.method == "POST" for r in received)
    assert all(signed_by_us(r) for r in received)
    payload = received[2].json()
    assert set(payload) == {"id", "reference", "status", "error_code", "error_message", "at", "to", "shortcode"}
    assert (payload["id"], payload["reference"], payload["to"], payload["shortcode"]) == (
        message_id,
        "order-17",
        PHONE,
        "57675",
    )
    attempts = CallbackAttempt.objects.filter(message_id=message_id)
    assert sorted(attempts.values_list("event", "status", "status_code", "attempt")) == [
        ("delivered", "delivered", 200, 1),
        ("queued", "delivered", 200, 1),
        ("sent", "delivered", 200, 1),
    ]


def test_a_duplicate_report_sends_no_second_callback(api, provider_server, django_capture_on_commit_callbacks):
    message_id = send_with_callback(api, f"{provider_server.url}/s", django_capture_on_commit_callbacks)["id"]
    uuid = str(Message.objects.get(id=message_id).uuid)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            delivery_report_record(
                provider="console", update=StatusUpdate(status=Status.DELIVERED, provider_status="D", reference=uuid)
            )

    assert CallbackAttempt.objects.filter(message_id=message_id, event="delivered").count() == 1


def test_a_report_that_came_before_the_provider_id_is_called_back_once_applied(
    api, provider_server, django_capture_on_commit_callbacks
):
    # given: a sent message, and a report for its provider id stored before the id was known
    message_id = send_with_callback(api, f"{provider_server.url}/s", django_capture_on_commit_callbacks)["id"]
    provider_server.wait_for(2)
    DeliveryReport.objects.create(
        provider="console", provider_message_id="early-1", status=Status.DELIVERED, provider_status="DELIVRD"
    )

    # when: the send's provider id turns out to be that one
    with django_capture_on_commit_callbacks(execute=True):
        moved = delivery_reports_apply_pending(message_id=message_id, provider="console", provider_message_id="early-1")

    # then
    assert moved == 1
    assert [r.json()["status"] for r in provider_server.wait_for(3)][-1] == "delivered"
    assert CallbackAttempt.objects.filter(message_id=message_id, event="delivered").count() == 1


def test_a_refused_message_is_called_back_as_refused(api, provider_server, django_capture_on_commit_callbacks):
    from delivery.suppression import suppression_add

    suppression_add(phone=PHONE, shortcode="57675", keyword="STOP")

    body = send_with_callback(api, f"{provider_server.url}/s", django_capture_on_commit_callbacks)

    assert body["code"] == "suppressed"
    payload = provider_server.wait_for(1)[0].json()
    assert (payload["status"], payload["error_code"]) == ("refused", "opted_out")


def test_a_failing_receiver_is_retried_with_backoff(api, provider_server, settings, django_capture_on_commit_callbacks):
    # given: the receiver fails twice, then answers
    settings.CALLBACK_MAX_ATTEMPTS = 5
    answers = {"queued": [FakeResponse(500, {"error": "down"}), FakeResponse(503)]}
    provider_server.respond = lambda request: (answers.get(request.json()["status"]) or [FakeResponse(200)]).pop(0)
    start = timezone.now()

    # when: the first POST fails at once
    with freeze_time(start):
        send_with_callback(api, f"{provider_server.url}/s", django_capture_on_commit_callbacks, text="Hi")
    attempt = CallbackAttempt.objects.get(event="queued")
    assert (attempt.status, attempt.attempt, attempt.status_code) == ("pending", 1, 500)
    assert attempt.next_retry_at == start + dt.timedelta(seconds=10)
    assert "down" in attempt.response_excerpt

    # then: not before its time; then again after 10 s, then 20 s
    with freeze_time(start + dt.timedelta(seconds=9)):
        callback_deliver(attempt.id)
    attempt.refresh_from_db()
    assert attempt.attempt == 1
    with freeze_time(start + dt.timedelta(seconds=10)):
        callback_deliver(attempt.id)
    attempt.refresh_from_db()
    assert (attempt.status, attempt.attempt, attempt.status_code) == ("pending", 2, 503)
    assert attempt.next_retry_at == start + dt.timedelta(seconds=30)
    with freeze_time(start + dt.timedelta(seconds=30)):
        callback_deliver(attempt.id)
    attempt.refresh_from_db()
    assert (attempt.status, attempt.attempt, attempt.status_code, attempt.next_retry_at) == ("delivered", 3, 200, None)
    queued_posts = [r for r in provider_server.requests if r.json()["status"] == "queued"]
    assert len(queued_posts) == 3
    assert len({r.body for r in queued_posts}) == 1  # the same change each time
    assert all(signed_by_us(r) for r in queued_posts[-1:])


def test_after_the_last_attempt_the_callback_fails(api, provider_server, settings, django_capture_on_commit_callbacks):
    settings.CALLBACK_MAX_ATTEMPTS = 2
    provider_server.script = [FakeResponse(500)]
    start = timezone.now()
    with freeze_time(start):
        send_with_callback(api, f"{provider_server.url}/s", django_capture_on_commit_callbacks)
    attempt = CallbackAttempt.objects.get(event="queued")

    with freeze_time(start + dt.timedelta(seconds=10)):
        callback_deliver(attempt.id)

    attempt.refresh_from_db()
    assert (attempt.status, attempt.attempt, attempt.next_retry_at) == ("failed", 2, None)
    assert attempt.error == "answered HTTP 500"


def test_an_unreachable_receiver_is_recorded_and_retried(api, settings, django_capture_on_commit_callbacks):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed

    send_with_callback(api, f"http://127.0.0.1:{port}/s", django_capture_on_commit_callbacks)

    attempt = CallbackAttempt.objects.get(event="queued")
    assert (attempt.status, attempt.attempt, attempt.status_code) == ("pending", 1, None)
    assert "ConnectionError" in attempt.error


def test_the_sweep_sends_what_the_broker_lost(api, provider_server):
    # given: stored, but the queued tasks never ran (no commit callbacks here: as if the broker lost them)
    start = timezone.now()
    with freeze_time(start):
        response = api.post(
            URL, {"to": PHONE, "shortcode": "57675", "text": "Hi", "callback_url": f"{provider_server.url}/s"},
            format="json",
        )  # fmt: skip
    attempt = CallbackAttempt.objects.get(message_id=response.json()["id"])
    assert attempt.status == "pending" and not provider_server.requests

    # when: a sweep runs soon, then a while later
    with freeze_time(start + dt.timedelta(seconds=5)):
        early = callback_sweep()
    with freeze_time(start + dt.timedelta(minutes=2)):
        late = callback_sweep()

    # then
    assert (early["requeued"], late["requeued"]) == (0, 1)
    assert provider_server.wait_for(1)[0].json()["status"] == "queued"
    attempt.refresh_from_db()
    assert attempt.status == "delivered"


def test_a_secret_unset_since_the_send_fails_closed(api, provider_server, monkeypatch):
    response = api.post(
        URL, {"to": PHONE, "shortcode": "57675", "text": "Hi", "callback_url": f"{provider_server.url}/s"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 202
    monkeypatch.delenv("CALLBACK_SECRET_TESTS")
    attempt = CallbackAttempt.objects.get(message_id=response.json()["id"])

    callback_deliver(attempt.id)

    attempt.refresh_from_db()
    assert attempt.status == "failed"
    assert "secret" in attempt.error
    assert not provider_server.requests


def test_messages_without_a_callback_url_cost_no_attempt(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api.post(URL, {"to": PHONE, "shortcode": "57675", "text": "Hi"}, format="json")

    assert not CallbackAttempt.objects.exists()


def test_the_payload_is_json_with_the_signature_over_timestamp_and_body(
    api, provider_server, django_capture_on_commit_callbacks
):
    send_with_callback(api, f"{provider_server.url}/s", django_capture_on_commit_callbacks)

    request = provider_server.wait_for(1)[0]
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body)["status"] == "queued"
    tampered = request.body.replace(b"queued", b"delivd")
    assert not signature_valid(
        secret=CALLBACK_SECRET,
        body=tampered,
        timestamp=request.headers[TIMESTAMP_HEADER],
        signature=request.headers[SIGNATURE_HEADER],
    )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_and_calls_back(api, provider_server, celery_worker):
    from conftest import wait_until

    # when: sent through the broker, the worker delivers and POSTs each change
    response = api.post(
        URL,
        {
            "to": PHONE,
            "shortcode": "57675",
            "text": "Hi",
            "reference": "w-1",
            "callback_url": f"{provider_server.url}/s",
        },
        format="json",
    )

    # then
    assert response.status_code == 202
    received = provider_server.wait_for(2, timeout=60)
    assert sorted(r.json()["status"] for r in received) == ["queued", "sent"]
    assert all(signed_by_us(r) for r in received)
    wait_until(
        lambda: CallbackAttempt.objects.filter(status="delivered").count() == 2, timeout=30, what="attempts recorded"
    )

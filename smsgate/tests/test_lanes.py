"""
The WSGI application's two lanes: provider webhooks without middleware, everything else
through settings.MIDDLEWARE. Requests go through the real application object, as
gunicorn calls it.
"""

import io
import json
from wsgiref.util import setup_testing_defaults

import psycopg
import pytest

from conftest import WEBHOOK_SECRET
from delivery.models import ChannelLog, Message
from smsgate.lanes import LanedApplication, WebhookHandler

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def application():
    return LanedApplication()


def call(application, path: str, body: bytes = b"", *, method="POST", host="testserver", headers=None):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "HTTP_HOST": host,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in (headers or {}).items()},
    }
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(response_headers)

    chunks = application(environ, start_response)
    answer["body"] = b"".join(chunks)
    chunks.close()
    return answer


@pytest.mark.parametrize(
    ("path", "middleware"),
    [
        ("/webhooks/generic/inbound/", False),
        ("/webhooks/twilio/status/", False),
        ("/sms-handler", False),
        ("/sms-dlr", False),
        ("/admin/login/", True),
        ("/api/v1/messages/", True),
        ("/health/live", True),
        ("/metrics", True),
        ("/webhooksx", True),
    ],
)
def test_each_path_takes_its_lane(application, path, middleware):
    # The clickjacking middleware marks every response of the full lane, whatever its status.
    answer = call(application, path, method="GET")
    assert ("X-Frame-Options" in answer["headers"]) is middleware


def test_an_inbound_webhook_through_the_lane_is_stored_with_its_log_and_carries_no_browser_headers(application):
    body = json.dumps({"from": "+919876543210", "to": "57675", "body": "2", "id": "lane-1"}).encode()
    answer = call(application, "/webhooks/generic/inbound/", body, headers={"X-Webhook-Secret": WEBHOOK_SECRET})
    assert answer["status"] == 200
    message = Message.objects.get(provider_message_id="lane-1")
    assert ChannelLog.objects.get(message=message).status_code == 200
    # no session cookie, no clickjacking or CSRF machinery on a machine's webhook
    assert "Set-Cookie" not in answer["headers"]
    assert "X-Frame-Options" not in answer["headers"]


def test_the_admin_keeps_the_whole_middleware(application):
    answer = call(application, "/admin/login/", method="GET")
    assert answer["status"] == 200
    assert answer["headers"]["X-Frame-Options"] == "DENY"
    assert "csrftoken" in answer["headers"].get("Set-Cookie", "")


def test_a_webhook_for_a_host_not_allowed_is_a_400(application):
    body = json.dumps({"from": "+919876543210", "to": "57675", "body": "2", "id": "lane-2"}).encode()
    answer = call(
        application,
        "/webhooks/generic/inbound/",
        body,
        host="evil.example.com",
        headers={"X-Webhook-Secret": WEBHOOK_SECRET},
    )
    assert answer["status"] == 400
    assert "unreadable request" in json.loads(answer["body"])["error"]
    assert not Message.objects.filter(provider_message_id="lane-2").exists()


def test_an_error_in_the_lane_is_djangos_500_not_a_crash(application, monkeypatch):
    def broken(self, request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(WebhookHandler, "_get_response", broken)
    fresh = LanedApplication()
    answer = call(fresh, "/webhooks/generic/inbound/", b"{}")
    assert answer["status"] == 500


@pytest.mark.services
def test_a_webhook_on_a_connection_the_database_dropped_is_a_503_and_its_retry_passes(application):
    from django.db import connection

    body = json.dumps({"from": "+919876543210", "to": "57675", "body": "2", "id": "lane-dropped"}).encode()
    headers = {"X-Webhook-Secret": WEBHOOK_SECRET}
    assert call(application, "/health/live", method="GET")["status"] == 200
    connection.ensure_connection()
    # given: the database drops this process's connection (a restart, a failover)
    with psycopg.connect(**connection.get_connection_params()) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    # when: a webhook arrives on it, then the aggregator retries
    first = call(application, "/webhooks/generic/inbound/", body, headers=headers)
    retry = call(application, "/webhooks/generic/inbound/", body, headers=headers)
    # then: a 503 that loses nothing, and the retry is stored once
    assert (first["status"], retry["status"]) == (503, 200)
    assert Message.objects.filter(provider_message_id="lane-dropped").count() == 1

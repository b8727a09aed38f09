"""
The one HTTP helper every send goes through (delivery.providers.http), against a real
local server: how answers are sorted into success, transient and permanent failures,
what the recorded exchange shows, and that connections are kept alive between sends.
"""

import json
import socket

import pytest

from conftest import FakeResponse
from delivery.providers import get_provider
from delivery.providers.base import PermanentSendError, SendError, TransientSendError
from delivery.providers.http import SESSION, http_call
from delivery.redaction import MASK, env_secret
from delivery.tests.factories import outbound_sms

TIMEOUT = 5.0


@pytest.mark.parametrize(
    "reply,error,retry_after",
    [
        (FakeResponse(200, {"id": "gw-1"}), None, None),
        (FakeResponse(202, {"id": "gw-1"}), None, None),
        (FakeResponse(400, {"error": "invalid number"}), PermanentSendError, None),
        (FakeResponse(401, {"error": "bad key"}), PermanentSendError, None),
        (FakeResponse(404, {}), PermanentSendError, None),
        (FakeResponse(429, {}, {"Retry-After": "7"}), TransientSendError, 7.0),
        (FakeResponse(429, {}), TransientSendError, None),
        (FakeResponse(500, {}), TransientSendError, None),
        (FakeResponse(503, {}, {"Retry-After": "30"}), TransientSendError, 30.0),
        (FakeResponse(503, {}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), TransientSendError, None),
    ],
    ids=["200", "202", "400", "401", "404", "429-retry-after", "429", "500", "503-retry-after", "503-http-date"],
)
def test_answers_are_sorted_by_status(provider_server, reply, error, retry_after):
    # given
    provider_server.script = [reply]

    # when
    try:
        answer = http_call("POST", f"{provider_server.url}/send", json={"to": "+919876543210"}, timeout=TIMEOUT)
    except SendError as exc:
        raised = exc
    else:
        raised = None

    # then: a success is returned with its exchange; a failure raises with it
    if error is None:
        assert raised is None
        assert answer.status_code == reply.status
        assert answer.data() == reply.body
        exchange = answer.exchange
    else:
        assert type(raised) is error
        assert raised.code == str(reply.status)
        assert raised.retry_after == retry_after
        assert str(raised).startswith(f"gateway answered {reply.status}")
        (exchange,) = raised.exchanges
    assert (exchange.method, exchange.status_code) == ("POST", reply.status)
    assert exchange.url == f"{provider_server.url}/send"
    assert json.loads(exchange.request_body) == {"to": "+919876543210"}
    assert len(provider_server.requests) == 1


def test_unchecked_call_returns_a_failure_for_the_caller_to_read(provider_server):
    # given: an SDK reads the answer itself
    provider_server.script = [FakeResponse(400, {"code": 21610, "message": "unsubscribed recipient"})]

    # when
    answer = http_call("POST", f"{provider_server.url}/send", data={"To": "+1"}, timeout=TIMEOUT, check=False)

    # then
    assert answer.status_code == 400
    assert answer.data()["code"] == 21610
    assert answer.exchange.status_code == 400


def test_timeout_is_transient(provider_server):
    # given: an API slower than the timeout
    provider_server.script = [FakeResponse(200, {"id": "late"}, delay=1.0)]

    # when
    with pytest.raises(TransientSendError) as raised:
        http_call("POST", f"{provider_server.url}/send", json={}, timeout=0.2, service="Sinch")

    # then: the attempt is recorded without an answer
    assert raised.value.code == "timeout"
    assert str(raised.value).startswith("Sinch timeout")
    (exchange,) = raised.value.exchanges
    assert exchange.status_code is None
    assert "Timeout" in exchange.error
    assert exchange.url == f"{provider_server.url}/send"


def test_refused_connection_is_transient():
    # given: nothing listens on the port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    # when
    with pytest.raises(TransientSendError) as raised:
        http_call("POST", f"http://127.0.0.1:{port}/send", json={"to": "+1"}, timeout=TIMEOUT)

    # then
    assert raised.value.code == "connection"
    (exchange,) = raised.value.exchanges
    assert (exchange.url, exchange.status_code) == (f"http://127.0.0.1:{port}/send", None)
    assert "ConnectionError" in exchange.error


def test_redirect_is_not_followed(provider_server):
    # given: an API that points elsewhere; the credentials stay on the origin they were meant for
    provider_server.script = [FakeResponse(302, {}, {"Location": "http://127.0.0.1:9/steal"})]

    # when
    answer = http_call(
        "POST", f"{provider_server.url}/send", json={}, headers={"Authorization": "Bearer k-1"}, timeout=TIMEOUT
    )

    # then
    assert answer.status_code == 302
    assert len(provider_server.requests) == 1


def test_unusable_url_is_permanent():
    # when
    with pytest.raises(PermanentSendError) as raised:
        http_call("POST", "gateway.example.com/send", json={}, timeout=TIMEOUT)

    # then
    assert raised.value.code == "bad_config"
    assert raised.value.exchanges == ()


@pytest.mark.parametrize("status", [200, 400, 503])
def test_secrets_are_masked_in_the_recorded_exchange(provider_server, monkeypatch, status):
    # given: a declared secret (read through env_secret) and one passed for this call only,
    # both in the URL, a header and the body, and echoed back by the API
    monkeypatch.setenv("GATEWAY_TEST_KEY", "declared key/9+x")
    declared = env_secret("GATEWAY_TEST_KEY")
    extra = "call-only-secret-42"
    provider_server.respond = lambda request: FakeResponse(status, {"echo": request.body.decode()})

    # when
    try:
        answer = http_call(
            "GET" if status == 200 else "POST",
            f"{provider_server.url}/send?user={extra}",
            params={"key": declared} if status == 200 else None,
            json=None if status == 200 else {"password": extra, "key": declared},
            headers={"Authorization": f"Bearer {declared}", "X-Api-Key": extra},
            timeout=TIMEOUT,
            secrets=[extra],
        )
        exchange, error = answer.exchange, ""
    except SendError as exc:
        (exchange,), error = exc.exchanges, str(exc)

    # then: the API received the real values, and the record shows none of them in any form
    received = provider_server.requests[0]
    assert extra in received.path and received.headers["X-Api-Key"] == extra
    recorded = json.dumps(exchange.__dict__) + error
    for secret in (declared, extra):
        for form in (secret, "declared+key%2F9%2Bx", "declared%20key%2F9%2Bx"):
            assert form not in recorded
    assert exchange.request_headers["Authorization"] == MASK
    assert exchange.request_headers["X-Api-Key"] == MASK
    assert MASK in exchange.url


@pytest.fixture
def keep_alive_server(provider_server):
    """The fake API speaking HTTP/1.1, counting the TCP connections it accepts."""
    httpd = provider_server.httpd
    httpd.RequestHandlerClass.protocol_version = "HTTP/1.1"
    # A kept connection's handler waits for the next request until the client closes it:
    # stopping the server does not wait for it.
    httpd.block_on_close = False
    accepted = []
    accept = httpd.get_request

    def counting_accept():
        connection = accept()
        accepted.append(connection[1])
        return connection

    httpd.get_request = counting_accept
    provider_server.accepted = accepted
    yield provider_server
    # The kept connection would outlive this server: a later one on the same port must not get it.
    SESSION.close()


def test_a_keep_alive_connection_is_reused_across_calls(keep_alive_server):
    # when: three sends, as three messages would make them
    for _ in range(3):
        http_call("POST", f"{keep_alive_server.url}/send", json={"to": "+919876543210"}, timeout=TIMEOUT)

    # then: one connection carried all three
    assert len(keep_alive_server.requests) == 3
    assert len(keep_alive_server.accepted) == 1


# Every provider's send, the SDK-based ones included, goes through the helper: the same
# pooled connection carries them, and what they record is masked the same way.
PROVIDER_SETTINGS = {
    "twilio": {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "twilio-auth-token-1"},
    "plivo": {"PLIVO_AUTH_ID": "MA" + "Z" * 18, "PLIVO_AUTH_TOKEN": "plivo-auth-token-1"},
    "sinch": {"SINCH_SERVICE_PLAN_ID": "plan-1", "SINCH_API_TOKEN": "sinch-api-token-1"},
    "msg91": {"MSG91_AUTH_KEY": "msg91-auth-key-1"},
    "generic": {"GATEWAY_API_KEY": "gateway-api-key-1"},
}
API_BASE_SETTING = {
    "twilio": "TWILIO_API_BASE",
    "plivo": "PLIVO_API_BASE",
    "sinch": "SINCH_API_BASE",
    "msg91": "MSG91_API_BASE",
    "generic": "GATEWAY_OUTBOUND_URL",
}


def accepted(request) -> FakeResponse:
    """Each API's answer to an accepted send, told apart by path."""
    if "/Messages.json" in request.path:
        return FakeResponse(201, {"sid": "SM" + "2" * 32, "status": "queued"})
    if "/Message/" in request.path:
        return FakeResponse(202, {"message": "message(s) queued", "message_uuid": ["uuid-1"], "api_id": "a-1"})
    if "/batches" in request.path:
        return FakeResponse(201, {"id": "batch-1"})
    if "sendhttp.php" in request.path:
        return FakeResponse(200, {"type": "success", "message": "3" * 24})
    return FakeResponse(200, {"id": "gw-1"})


@pytest.mark.parametrize("slug", list(PROVIDER_SETTINGS))
def test_every_provider_sends_through_the_pooled_masking_helper(keep_alive_server, settings, slug):
    # given
    for name, value in PROVIDER_SETTINGS[slug].items():
        setattr(settings, name, value)
    setattr(settings, API_BASE_SETTING[slug], keep_alive_server.url)
    keep_alive_server.respond = accepted
    provider = get_provider(slug)

    # when: two messages
    results = [provider.send(outbound_sms(provider=slug, reference=ref)) for ref in ("r-1", "r-2")]

    # then: both accepted over one kept-alive connection
    assert all(result.provider_message_id for result in results)
    assert len(keep_alive_server.requests) == 2
    assert len(keep_alive_server.accepted) == 1
    # and: the recorded calls carry no credential
    (exchange,) = results[0].exchanges
    assert exchange.status_code in (200, 201, 202)
    recorded = json.dumps(exchange.__dict__)
    secret = [value for name, value in PROVIDER_SETTINGS[slug].items() if not name.endswith(("_SID", "_PLAN_ID"))]
    assert all(value not in recorded for value in secret)
    if "Authorization" in exchange.request_headers:
        assert exchange.request_headers["Authorization"] == MASK

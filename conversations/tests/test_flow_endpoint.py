"""A flow's completion POST, received by a real local HTTP server that checks its signature."""

import json

import pytest

from commands.models import Shortcode
from commands.tests.factories import CommandFactory
from conftest import FakeResponse
from conversations import http_handler
from conversations.models import Flow
from conversations.sessions import session_get
from conversations.tests.factories import service_shortcode
from conversations.tests.flow_factories import PHONE, recharge_flow, sms
from delivery.models import Message
from delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_valid
from delivery.statuses import Direction

SIGNING_ENV = "HANDLER_SECRET_RECHARGE_SIGNING"
SIGNING_SECRET = "flow-signing-secret-5a1b9c"
UNAVAILABLE = "Sorry, this service is unavailable right now. Please try again later."


@pytest.fixture
def endpoint_flow(db, provider_server, settings, monkeypatch):
    """The recharge flow POSTing its answers to the local server, which may answer on 127.0.0.1."""
    settings.HANDLER_HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    monkeypatch.setenv(SIGNING_ENV, SIGNING_SECRET)
    monkeypatch.setattr(http_handler, "backoff_sleep", lambda seconds: None)  # retries without waiting
    shortcode = service_shortcode()
    recharge_flow(
        shortcode,
        completion_action=Flow.Action.ENDPOINT,
        endpoint_url=f"{provider_server.url}/recharges",
        secret_env=SIGNING_ENV,
        endpoint_timeout=3,
        endpoint_retries=1,
    )
    CommandFactory(shortcode=shortcode, code="5", name="Recharge", handler_key="flow", config={"flow": "recharge"})
    return provider_server


def run_to_completion() -> str:
    for text in ("5", "Asha", "1"):
        sms(text)
    return sms("199")


def test_the_answers_are_posted_signed_and_the_reply_is_the_final_message(endpoint_flow):
    # given: the endpoint answers with the final text
    endpoint_flow.script = [FakeResponse(200, {"reply": "Recharge of Rs 199 booked, ref R-77."})]
    # when
    reply = run_to_completion()
    # then: one signed POST with the answers
    [request] = endpoint_flow.requests
    inbound = Message.objects.filter(direction=Direction.INBOUND, body="199").get()
    assert (request.method, request.path) == ("POST", "/recharges")
    assert json.loads(request.body) == {
        "flow": "recharge",
        "phone": PHONE,
        "shortcode": "57675",
        "answers": {"name": "Asha", "plan": "prepaid", "amount": "199"},
        "message_id": inbound.id,
    }
    assert signature_valid(
        secret=SIGNING_SECRET,
        body=request.body,
        timestamp=request.headers[TIMESTAMP_HEADER],
        signature=request.headers[SIGNATURE_HEADER],
    )
    assert not signature_valid(
        secret="another-secret",
        body=request.body,
        timestamp=request.headers[TIMESTAMP_HEADER],
        signature=request.headers[SIGNATURE_HEADER],
    )
    # and the endpoint's reply is what the subscriber gets; the run is over
    assert reply == "Recharge of Rs 199 booked, ref R-77."
    assert session_get(shortcode="57675", phone=PHONE) is None


def test_an_endpoint_answering_no_reply_gives_the_flows_final_reply(endpoint_flow):
    endpoint_flow.script = [FakeResponse(200, {"ok": True})]
    assert run_to_completion() == "Thanks Asha! Your prepaid request is noted."


@pytest.mark.parametrize(
    ("script", "attempts"),
    [
        ([FakeResponse(503, {}), FakeResponse(200, {"reply": "Booked."})], 2),  # one retry, then it answers
    ],
)
def test_a_failing_endpoint_is_retried(endpoint_flow, script, attempts):
    endpoint_flow.script = script
    assert run_to_completion() == "Booked."
    assert len(endpoint_flow.requests) == attempts


@pytest.mark.parametrize("failure", [FakeResponse(500, {}), FakeResponse(404, {"reply": "not here"})])
def test_an_endpoint_that_keeps_failing_gets_an_apology(endpoint_flow, failure):
    endpoint_flow.script = [failure]
    assert run_to_completion() == UNAVAILABLE
    assert session_get(shortcode="57675", phone=PHONE) is None


def test_with_its_secret_unset_nothing_is_sent(endpoint_flow, monkeypatch):
    monkeypatch.delenv(SIGNING_ENV)
    assert run_to_completion() == UNAVAILABLE
    assert endpoint_flow.requests == []


def test_a_catch_all_endpoint_answers_free_text(endpoint_flow):
    # given: free text on 57675 goes to the HTTP endpoint instead of the unknown-code reply
    shortcode = Shortcode.objects.get(number="57675")
    shortcode.catch_all_handler = "http"
    shortcode.catch_all_config = {"endpoint": f"{endpoint_flow.url}/free-text", "secret_env": SIGNING_ENV}
    shortcode.save()
    endpoint_flow.script = [FakeResponse(200, {"reply": "We got your message."})]
    # when
    reply = sms("where is my refund")
    # then: the endpoint received the whole text, signed, and its reply was sent
    [request] = endpoint_flow.requests
    assert json.loads(request.body) == {"phone": PHONE, "code": "", "args": "where is my refund", "shortcode": "57675"}
    assert signature_valid(
        secret=SIGNING_SECRET,
        body=request.body,
        timestamp=request.headers[TIMESTAMP_HEADER],
        signature=request.headers[SIGNATURE_HEADER],
    )
    assert reply == "We got your message."

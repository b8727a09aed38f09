"""
`endpoint_post`: how the project calls another system's endpoint (the `http` handler and
flows), against a real local server that checks our signature the way a receiver would.
"""

import itertools
import logging

import pytest

from commands.models import Command
from commands.tests.factories import CommandFactory, ShortcodeFactory
from conftest import FakeResponse, RecordedRequest
from conversations import http_handler
from conversations.handling import inbound_handle
from conversations.http_handler import EndpointAnswer, endpoint_post
from conversations.receiving import message_receive
from delivery.models import Message
from delivery.providers.base import InboundSMS
from delivery.redaction import MASK
from delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_valid
from delivery.statuses import Direction, Status

PHONE = "+919876543210"
SIGNING_ENV = "HANDLER_SECRET_OFFERS_SIGNING"
SIGNING_SECRET = "offers-signing-secret-7781"
FALLBACK = "Offers are resting. Try later."
_message_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch):
    monkeypatch.setenv(SIGNING_ENV, SIGNING_SECRET)


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.HANDLER_HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture(autouse=True)
def pauses(monkeypatch) -> list[float]:
    """The pauses between attempts, taken by time travel: recorded, never slept."""
    taken: list[float] = []
    monkeypatch.setattr(http_handler, "backoff_sleep", taken.append)
    return taken


def signed_by_us(request: RecordedRequest, secret: str = SIGNING_SECRET) -> bool:
    """What a receiver checks (delivery/signing.py): the HMAC of timestamp and body, and a recent timestamp."""
    return signature_valid(
        secret=secret,
        body=request.body,
        timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
        signature=request.headers.get(SIGNATURE_HEADER, ""),
    )


def post(url: str, **options) -> EndpointAnswer:
    arguments = {"payload": {"phone": PHONE, "code": "4"}, "secret_env": SIGNING_ENV, "timeout": 2, "retries": 2}
    return endpoint_post(url=url, **arguments | options)


def endpoint_events(caplog) -> list[dict]:
    return [record.fields for record in caplog.records if getattr(record, "event", None) == "endpoint.called"]


# Signature ---------------------------------------------------------------------------------


@pytest.fixture
def verifying_server(provider_server):
    """An endpoint that answers only requests signed with SIGNING_SECRET, as a receiver should."""

    def respond(request: RecordedRequest) -> FakeResponse:
        if not signed_by_us(request):
            return FakeResponse(401, {"error": "bad signature"})
        return FakeResponse(200, {"reply": f"verified for {request.json()['phone']}"})

    provider_server.respond = respond
    return provider_server


def test_the_receiver_verifies_our_signature(verifying_server):
    # when
    answer = post(f"{verifying_server.url}/offers")
    # then
    assert answer.ok and answer.reply == f"verified for {PHONE}"
    (request,) = verifying_server.requests
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {"phone": PHONE, "code": "4"}


def test_a_receiver_with_another_secret_refuses_and_it_is_not_retried(verifying_server, monkeypatch, pauses):
    # given: our side holds a different secret than the receiver
    monkeypatch.setenv(SIGNING_ENV, "a-secret-the-receiver-does-not-know")
    # when
    answer = post(f"{verifying_server.url}/offers")
    # then
    assert (answer.ok, answer.status_code, answer.error) == (False, 401, "answered HTTP 401")
    assert len(verifying_server.requests) == 1
    assert pauses == []


@pytest.mark.parametrize(
    "secret_env,error",
    [
        ("HANDLER_SECRET_NEVER_SET", "environment variable HANDLER_SECRET_NEVER_SET is not set, nothing was sent"),
        ("DJANGO_SECRET_KEY", "must name an environment variable HANDLER_SECRET_<NAME>"),
        ("DATABASE_URL", "must name an environment variable HANDLER_SECRET_<NAME>"),
        ("", "must name an environment variable HANDLER_SECRET_<NAME>"),
    ],
)
def test_without_a_usable_signing_secret_nothing_is_sent(verifying_server, secret_env, error):
    answer = post(f"{verifying_server.url}/offers", secret_env=secret_env)
    assert answer.ok is False
    assert error in answer.error
    assert answer.status_code is None
    assert verifying_server.requests == []


# Retries ------------------------------------------------------------------------------------


def answers(*statuses: int, **headers: str) -> list[FakeResponse]:
    return [FakeResponse(status, {"reply": "at last"}, headers=headers) for status in statuses]


@pytest.mark.parametrize(
    "script,retries,ok,status_code,requests,taken",
    [
        (answers(503, 502, 200), 2, True, 200, 3, [0.5, 1.0]),
        (answers(500, 500, 500), 2, False, 500, 3, [0.5, 1.0]),
        (answers(503, 200), 0, False, 503, 1, []),
        (answers(429, 200, **{"Retry-After": "3"}), 2, True, 200, 2, [3.0]),
        (answers(429, 200, **{"Retry-After": "3600"}), 2, True, 200, 2, [4.0]),
        (answers(504, 504, 504, 504, 504, 504, 200), 9, False, 504, 6, [0.5, 1.0, 2.0, 4.0, 4.0]),
        (answers(400, 200), 2, False, 400, 1, []),
        (answers(404, 200), 2, False, 404, 1, []),
        (answers(302, 200, Location="http://127.0.0.1:9/"), 2, False, 302, 1, []),
        ([FakeResponse(200, "not json"), FakeResponse(200, {"reply": "x"})], 2, False, 200, 1, []),
    ],
    ids=[
        "5xx-then-ok",
        "5xx-exhausted",
        "no-retries",
        "429-retry-after",
        "retry-after-capped",
        "retries-capped-at-5",
        "400-final",
        "404-final",
        "redirect-final",
        "bad-json-final",
    ],
)
def test_only_failures_that_may_pass_are_tried_again(
    provider_server, pauses, script, retries, ok, status_code, requests, taken
):
    # given
    provider_server.script = script
    # when
    answer = post(f"{provider_server.url}/offers", retries=retries)
    # then
    assert (answer.ok, answer.status_code) == (ok, status_code)
    assert len(provider_server.requests) == requests
    assert pauses == taken
    # every attempt carries its own valid signature
    assert all(signed_by_us(request) for request in provider_server.requests)


def test_an_endpoint_that_does_not_answer_in_time_is_tried_again(provider_server, pauses):
    provider_server.script = [FakeResponse(200, {"reply": "late"}, delay=2.0), FakeResponse(200, {"reply": "on time"})]
    answer = post(f"{provider_server.url}/offers", timeout=0.3, retries=1)
    assert (answer.ok, answer.reply) == (True, "on time")
    assert pauses == [0.5]


def test_an_endpoint_that_never_answers_in_time_fails_after_its_retries(provider_server, pauses):
    provider_server.script = [FakeResponse(200, {"reply": "late"}, delay=2.0)]
    answer = post(f"{provider_server.url}/offers", timeout=0.3, retries=1)
    assert answer.ok is False
    assert answer.status_code is None
    assert answer.error == "no complete answer within 0.3 s (after 2 attempts)"
    assert len(provider_server.wait_for(2)) == 2


def test_an_unreachable_endpoint_is_tried_again_then_given_up(pauses):
    answer = post("http://127.0.0.1:9/offers", retries=2)
    assert answer.ok is False
    assert answer.status_code is None
    assert "after 3 attempts" in answer.error
    assert pauses == [0.5, 1.0]


def test_a_refused_address_is_not_tried_again(provider_server, settings, pauses):
    settings.HANDLER_HTTP_ALLOWED_NETWORKS = []
    answer = post(f"{provider_server.url}/offers")
    assert answer.ok is False
    assert "private or reserved address" in answer.error
    assert provider_server.requests == []
    assert pauses == []


# Answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response,ok,reply",
    [
        (FakeResponse(200, {"reply": "50% off"}), True, "50% off"),
        (FakeResponse(200, {"message": "Double data"}), True, "Double data"),
        (FakeResponse(200, {"reply": "  ", "message": "Double data"}), True, "Double data"),
        (FakeResponse(200, {"reply": "first", "message": "second"}), True, "first"),
        (FakeResponse(201, {"reply": 42, "message": "Created"}), True, "Created"),
        (
            FakeResponse(200, "Plain words\n", headers={"Content-Type": "text/plain; charset=utf-8"}),
            True,
            "Plain words",
        ),
        (FakeResponse(200, {"status": "noted"}), True, ""),
        (FakeResponse(200, ["a", "list"]), True, ""),
        (FakeResponse(204, ""), True, ""),
        (FakeResponse(200, "<p>hello</p>", headers={"Content-Type": "text/html"}), True, ""),
        (FakeResponse(200, "not json"), False, ""),
        (FakeResponse(200, {"reply": "x"}, headers={"Content-Type": "application/problem+json"}), True, "x"),
    ],
)
def test_the_reply_is_read_from_json_or_plain_text(provider_server, response, ok, reply):
    provider_server.script = [response]
    answer = post(f"{provider_server.url}/offers")
    assert (answer.ok, answer.reply) == (ok, reply)


# The call's event ------------------------------------------------------------------------


def test_each_call_is_one_event_with_its_latency_and_the_url_masked(provider_server, caplog, pauses):
    # given: an endpoint that takes a moment, reached at a URL carrying a token
    caplog.set_level(logging.INFO, logger="smsgate.events")
    provider_server.script = [FakeResponse(503, {}), FakeResponse(200, {"reply": "ok"}, delay=0.2)]
    url = f"{provider_server.url}/offers?api_token=tok-998877&campaign=diwali"
    # when
    answer = post(url)
    # then
    (fields,) = endpoint_events(caplog)
    assert fields["url"] == f"{provider_server.url}/offers?api_token={MASK}&campaign=diwali"
    assert (fields["outcome"], fields["status_code"], fields["attempts"]) == ("ok", 200, 2)
    assert fields["elapsed_ms"] == answer.elapsed_ms >= 200
    assert "tok-998877" not in caplog.text
    assert SIGNING_SECRET not in caplog.text


def test_a_call_never_made_is_still_one_event(caplog):
    caplog.set_level(logging.INFO, logger="smsgate.events")
    post("http://127.0.0.1:9/offers", secret_env="HANDLER_SECRET_NEVER_SET")
    (fields,) = endpoint_events(caplog)
    assert (fields["outcome"], fields["attempts"], fields["status_code"]) == ("failed", 0, None)
    assert "HANDLER_SECRET_NEVER_SET is not set" in fields["error"]


# Through the pipeline: the endpoint down, then back ------------------------------------


@pytest.fixture
def offers_command(db):
    def point_at(url: str, **config):
        return CommandFactory(
            shortcode=ShortcodeFactory(number="57675"),
            code="4",
            name="Offers",
            handler_key="http",
            config={"endpoint": url, "secret_env": SIGNING_ENV, "fallback": FALLBACK, **config},
        )

    return point_at


def sms(text: str) -> tuple[Message, str]:
    inbound, _ = message_receive(
        provider="generic",
        sms=InboundSMS(sender=PHONE, recipient="57675", body=text, provider_message_id=f"he-{next(_message_ids)}"),
    )
    inbound_handle(message_id=inbound.id)
    inbound.refresh_from_db()
    reply = Message.objects.filter(in_reply_to=inbound).first()
    return inbound, reply.body if reply else ""


def test_the_endpoint_down_gives_the_fallback_and_loses_nothing(offers_command, verifying_server, pauses):
    # given: an endpoint that is down
    offers_command("http://127.0.0.1:9/offers", retries=1)
    # when
    inbound, reply = sms("4 weekend")
    # then: tried twice, answered with the fallback, the inbound handled
    assert reply == FALLBACK
    assert pauses == [0.5]
    assert inbound.status == Status.HANDLED
    assert Message.objects.filter(direction=Direction.OUTBOUND, in_reply_to=inbound).count() == 1
    # when: it is back, at the verifying server, and staff point the command at it
    command = Command.objects.get(code="4")
    command.config = {"endpoint": f"{verifying_server.url}/offers", "secret_env": SIGNING_ENV, "fallback": FALLBACK}
    command.save()
    _, reply = sms("4 weekend")
    # then
    assert reply == f"verified for {PHONE}"
    assert verifying_server.requests[0].json() == {"phone": PHONE, "code": "4", "args": "weekend", "shortcode": "57675"}


@pytest.mark.parametrize(
    "response,expected",
    [
        (FakeResponse(200, {"message": "Double data today"}), "Double data today"),
        (FakeResponse(200, "Plain offer", headers={"Content-Type": "text/plain"}), "Plain offer"),
        (FakeResponse(200, {"status": "noted"}), FALLBACK),
        (FakeResponse(204, ""), FALLBACK),
    ],
)
def test_the_handler_replies_with_json_or_plain_text(offers_command, provider_server, response, expected):
    offers_command(f"{provider_server.url}/offers")
    provider_server.script = [response]
    assert sms("4")[1] == expected


def test_a_command_saved_before_signing_gets_the_fallback_and_calls_nothing(offers_command, provider_server, caplog):
    # given: a row from before signing, with no secret_env
    command = offers_command(f"{provider_server.url}/offers")
    Command.objects.filter(pk=command.pk).update(config={"endpoint": f"{provider_server.url}/offers"})
    # when / then
    assert sms("4")[1] == "Sorry, this service is unavailable right now. Please try again later."
    assert provider_server.requests == []
    assert "'secret_env' must name" in caplog.text

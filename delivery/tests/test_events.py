"""
The pipeline's events as the log shows them: one JSON object per line, phone numbers
masked unless the log is at DEBUG, and one correlation id from the inbound webhook to
the delivery report of its reply.
"""

import io
import json
import logging
from functools import partial

import pytest

from conftest import FakeResponse
from conversations.tests.factories import PHONE, SHORTCODE, service_shortcode
from delivery import events
from delivery.deliver import RetryLater, message_deliver
from delivery.events import event
from delivery.log_filters import RedactingFilter
from delivery.log_format import JsonFormatter
from delivery.models import Message
from delivery.statuses import Direction
from delivery.suppression import suppression_add
from delivery.tests.factories import OutboundMessageFactory

MASKED_PHONE = "+91******3210"


class LogCapture:
    """What the JSON handler of settings.LOGGING writes, on a StringIO: the text, and each line parsed."""

    def __init__(self):
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines()]

    def events(self, name: str) -> list[dict]:
        return [line for line in self.lines() if line.get("event") == name]

    def event(self, name: str) -> dict:
        (found,) = self.events(name)
        return found


@pytest.fixture
def log():
    capture = LogCapture()
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield capture
    root.removeHandler(handler)


@pytest.fixture
def root_level():
    """Set the root logger's level for one test (the redacting filter follows it), then put it back."""
    root = logging.getLogger()
    saved = root.level
    yield root.setLevel
    root.setLevel(saved)


@pytest.fixture
def commits(django_capture_on_commit_callbacks):
    """Run what the pipeline queues on commit (handling, delivery), as after a real commit."""
    return partial(django_capture_on_commit_callbacks, execute=True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body", [{"from": PHONE, "to": SHORTCODE, "body": "2", "id": "in-1"}, f"From={PHONE}&To={SHORTCODE}&Body=2"]
)
def test_one_correlation_id_runs_from_the_inbound_webhook_to_the_delivery_report(
    post_webhook, provider_server, commits, log, body
):
    # given: a shortcode replying through a gateway (a local server)
    service_shortcode(provider="generic", provider_config={"outbound_url": f"{provider_server.url}/send"})
    provider_server.script = [FakeResponse(201, {"id": "gw-1"})]

    # when: an SMS "2" comes in, its reply is sent, and the gateway reports it delivered
    with commits():
        assert post_webhook("/webhooks/generic/inbound/", body).status_code == 200
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    response = post_webhook(f"/webhooks/generic/status/?ref={reply.uuid}", {"id": "gw-1", "status": "delivered"})
    assert response.status_code == 200

    # then: every line is a JSON object with its time, level and logger
    lines = log.lines()
    assert lines
    assert all({"ts", "level", "logger"} <= line.keys() for line in lines)
    # the phone appears masked, and nowhere whole
    assert "9876543210" not in log.text
    assert {line["phone"] for line in lines if "phone" in line} == {MASKED_PHONE}
    # one correlation id, the inbound's, from the webhook to the report
    inbound = Message.objects.get(direction=Direction.INBOUND)
    correlated = ["inbound.stored", "message.queued", "message.sent", "inbound.handled", "report.recorded"]
    assert {name: log.event(name)["correlation_id"] for name in correlated} == dict.fromkeys(
        correlated, str(inbound.uuid)
    )
    # and each event says what happened
    assert [(e["provider"], e["kind"]) for e in log.events("webhook.received")] == [
        ("generic", "inbound"),
        ("generic", "status"),
    ]
    assert log.event("inbound.stored") | {"ts": None} == {
        "ts": None,
        "level": "INFO",
        "logger": "smsgate.events",
        "event": "inbound.stored",
        "provider": "generic",
        "shortcode": SHORTCODE,
        "message_id": inbound.id,
        "correlation_id": str(inbound.uuid),
        "phone": MASKED_PHONE,
        "duplicate": False,
    }
    handled = log.event("inbound.handled")
    assert (handled["command"], handled["outcome"], handled["message_id"]) == ("2", "replied", inbound.id)
    assert handled["duration_ms"] >= 0
    sent = log.event("message.sent")
    assert (sent["outcome"], sent["error_code"], sent["message_id"]) == ("sent", "", reply.id)
    assert sent["duration_ms"] > 0
    assert log.event("message.queued")["segments"] == 1
    report = log.event("report.recorded")
    assert (report["status"], report["applied"], report["message_id"]) == ("delivered", True, reply.id)


@pytest.mark.django_db
def test_plain_log_lines_written_while_a_message_is_handled_carry_its_correlation_id(post_webhook, commits, log):
    # given: a console shortcode, which logs the replies it "sends"
    service_shortcode(provider="console")

    # when
    with commits():
        assert post_webhook("/webhooks/generic/inbound/", {"from": PHONE, "to": SHORTCODE, "body": "2"}).status_code
    # then
    inbound = Message.objects.get(direction=Direction.INBOUND)
    (console_line,) = [line for line in log.lines() if line["logger"] == "delivery.providers.console"]
    assert console_line["correlation_id"] == str(inbound.uuid)
    assert console_line["message"].startswith(f"SMS to {MASKED_PHONE} from {SHORTCODE}")
    assert "event" not in console_line


@pytest.mark.django_db
def test_a_duplicate_webhook_logs_the_stored_message_as_a_duplicate(post_webhook, commits, log):
    service_shortcode()
    body = {"from": PHONE, "to": SHORTCODE, "body": "2", "id": "in-7"}
    with commits():
        post_webhook("/webhooks/generic/inbound/", body)
        post_webhook("/webhooks/generic/inbound/", body)
    inbound = Message.objects.get(direction=Direction.INBOUND)
    stored = log.events("inbound.stored")
    assert [(e["duplicate"], e["message_id"], e["correlation_id"]) for e in stored] == [
        (False, inbound.id, str(inbound.uuid)),
        (True, inbound.id, str(inbound.uuid)),
    ]
    assert len(log.events("inbound.handled")) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("level", "phone"),
    [(logging.INFO, MASKED_PHONE), (logging.WARNING, MASKED_PHONE), (logging.DEBUG, PHONE)],
)
def test_phones_are_whole_only_when_the_log_is_at_debug(post_webhook, commits, log, root_level, level, phone):
    root_level(level)
    service_shortcode()
    with commits():
        post_webhook("/webhooks/generic/inbound/", {"from": PHONE, "to": SHORTCODE, "body": "STOP"})
    if level > logging.INFO:
        assert log.lines() == []  # events are INFO lines
        return
    assert log.event("suppression.added")["phone"] == phone
    assert log.event("inbound.stored")["phone"] == phone


@pytest.mark.django_db
def test_an_opt_out_logs_the_suppression_and_the_refused_reply(post_webhook, commits, log):
    # given: a number that sent STOP
    service_shortcode()
    with commits():
        post_webhook("/webhooks/generic/inbound/", {"from": PHONE, "to": SHORTCODE, "body": "STOP"})
    # when: it sends "2"
    with commits():
        post_webhook("/webhooks/generic/inbound/", {"from": PHONE, "to": SHORTCODE, "body": "2"})
    # then
    first, second = Message.objects.filter(direction=Direction.INBOUND).order_by("id")
    assert log.event("suppression.added") | {"ts": None} == {
        "ts": None,
        "level": "INFO",
        "logger": "smsgate.events",
        "event": "suppression.added",
        "shortcode": SHORTCODE,
        "source": "sms",
        "phone": MASKED_PHONE,
        "correlation_id": str(first.uuid),
    }
    refused = log.event("message.refused")
    assert (refused["reason"], refused["correlation_id"]) == ("opted_out", str(second.uuid))
    assert [e["outcome"] for e in log.events("inbound.handled")] == ["replied", "replied"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reply", "outcome", "retried"),
    [
        (FakeResponse(503, {"error": "busy"}), "retry", True),
        (FakeResponse(400, {"error": "bad number"}), "failed", False),
    ],
)
def test_a_failed_send_logs_its_outcome_and_error(provider_server, settings, log, reply, outcome, retried):
    # given: a message sent with no inbound behind it, and a gateway that refuses it
    settings.GATEWAY_OUTBOUND_URL = f"{provider_server.url}/sms"
    provider_server.script = [reply]
    message = OutboundMessageFactory()
    # when
    if retried:
        with pytest.raises(RetryLater):
            message_deliver(message_id=message.id)
    else:
        assert message_deliver(message_id=message.id) == "failed"
    # then: the message's own uuid is its correlation id
    sent = log.event("message.sent")
    assert (sent["outcome"], sent["correlation_id"], sent["provider"]) == (outcome, str(message.uuid), "generic")
    assert sent["error_code"]
    assert sent["duration_ms"] > 0


@pytest.mark.django_db
def test_a_send_refused_at_send_time_logs_the_refusal_and_the_outcome(provider_server, log):
    # given: a queued message whose number opted out after it was queued
    message = OutboundMessageFactory()
    suppression_add(phone=message.phone, shortcode=message.shortcode, keyword="STOP", source="admin")
    # when
    assert message_deliver(message_id=message.id) == "refused"
    # then: nothing reached the gateway, and the log says why
    assert provider_server.requests == []
    refused, sent = log.event("message.refused"), log.event("message.sent")
    assert (refused["reason"], refused["correlation_id"]) == ("opted_out", str(message.uuid))
    assert (sent["outcome"], sent["error_code"]) == ("refused", "opted_out")
    assert log.event("suppression.added")["source"] == "admin"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "headers", "body", "provider", "reason", "status"),
    [
        ("/webhooks/generic/inbound/", {"X-Webhook-Secret": "wrong"}, {"from": PHONE}, "generic", "forbidden", 403),
        ("/webhooks/no-such-gateway/inbound/", {}, {"from": PHONE}, "unknown", "unknown_provider", 404),
        ("/webhooks/generic/status/", {}, "x" * 70_000, "generic", "too_large", 413),
        ("/webhooks/generic/inbound/", None, {"to": SHORTCODE}, "generic", "bad_request", 400),
    ],
)
def test_a_refused_webhook_logs_why(post_webhook, log, path, headers, body, provider, reason, status):
    response = post_webhook(path, body, headers=headers or {}, sign=headers is None)
    assert response.status_code == status
    refused = log.event("webhook.refused")
    assert (refused["provider"], refused["reason"], refused["status_code"]) == (provider, reason, status)
    assert refused["kind"] == ("status" if "/status/" in path else "inbound")
    assert "9876543210" not in log.text


@pytest.mark.django_db
def test_a_method_no_webhook_takes_is_logged_as_refused(client, log):
    response = client.put("/webhooks/generic/status/", b"{}", content_type="application/json")
    assert response.status_code == 405
    refused = log.event("webhook.refused")
    assert (refused["provider"], refused["kind"], refused["reason"]) == ("generic", "status", "method")


def test_event_fields_are_masked_in_the_log_but_reach_listeners_as_given(settings, monkeypatch, log):
    # given: a declared secret (the generic gateway's key), and a listener
    settings.GATEWAY_API_KEY = "gw-api-key-123456"
    heard = []
    monkeypatch.setattr(events, "_listeners", [*events._listeners, lambda name, fields: heard.append(fields)])
    # when: an event's fields quote the secret and a phone
    event("message.sent", provider="generic", error_code="key gw-api-key-123456 refused", phone=PHONE)
    # then
    line = log.event("message.sent")
    assert (line["error_code"], line["phone"]) == ("key ******** refused", MASKED_PHONE)
    assert "gw-api-key-123456" not in log.text
    assert heard == [{"provider": "generic", "error_code": "key gw-api-key-123456 refused", "phone": PHONE}]

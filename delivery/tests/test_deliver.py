"""Sending: the exact request the gateway gets, retries, permanent failures, throttling, the channel log."""

import time
from datetime import timedelta

import pytest
from celery.signals import task_prerun
from django.utils import timezone
from freezegun import freeze_time

from conftest import FakeResponse
from delivery import outbound
from delivery.deliver import RetryLater, message_deliver
from delivery.models import ChannelLog, Message
from delivery.outbound import DELIVER_TASK, message_send
from delivery.send_options import SendOptions
from delivery.suppression import suppression_add
from delivery.sweeps import outbox_sweep
from delivery.tasks import deliver
from delivery.tests.factories import OutboundMessageFactory
from delivery.throttle import token_bucket_wait


@pytest.fixture
def gateway(provider_server, settings):
    settings.GATEWAY_OUTBOUND_URL = f"{provider_server.url}/sms"
    settings.GATEWAY_API_KEY = "gw-api-key-123"
    return provider_server


@pytest.mark.django_db
def test_generic_send_posts_the_documented_request(gateway):
    # given
    gateway.script = [FakeResponse(201, {"message_id": "gw-42"})]
    message = OutboundMessageFactory(body="Hello")
    # when
    outcome = message_deliver(message_id=message.id)
    # then
    assert outcome == "sent"
    request = gateway.requests[0]
    assert (request.method, request.path) == ("POST", "/sms")
    assert request.headers["Authorization"] == "Bearer gw-api-key-123"
    assert request.json() == {
        "to": message.phone,
        "from": "57675",
        "message": "Hello",
        "reference": str(message.uuid),
        "callback_url": f"https://sms.example.com/webhooks/generic/status/?ref={message.uuid}",
    }
    message.refresh_from_db()
    assert (message.status, message.provider_message_id, message.attempts) == ("sent", "gw-42", 1)


@pytest.mark.django_db
def test_shortcode_outbound_url_and_sender_override_the_defaults(gateway, provider_server):
    message = OutboundMessageFactory(
        provider_options={"outbound_url": f"{provider_server.url}/other", "sender": "ACME"}
    )
    message_deliver(message_id=message.id)
    assert gateway.requests[0].path == "/other"
    assert gateway.requests[0].json()["from"] == "ACME"


@pytest.fixture
def eager_retries():
    """As on the embedded default: an eager task's retry runs again at once instead of raising."""
    from smsgate.celery import app

    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True


@pytest.mark.django_db
def test_500_500_200_is_one_send_after_three_attempts(gateway, eager_retries):
    # given
    gateway.script = [FakeResponse(500, {"e": 1}), FakeResponse(502, "bad gateway"), FakeResponse(200, {"id": "ok"})]
    message = OutboundMessageFactory()
    # when: the task retries (eagerly here, with real backoff on a worker)
    deliver.delay(message.id)
    # then
    message.refresh_from_db()
    assert (message.status, message.attempts, message.provider_message_id) == ("sent", 3, "ok")
    assert len(gateway.requests) == 3
    assert list(ChannelLog.objects.filter(message=message).order_by("id").values_list("status_code", flat=True)) == [
        500,
        502,
        200,
    ]


@pytest.mark.django_db
def test_transient_failure_records_the_attempt_and_next_time(gateway):
    gateway.script = [FakeResponse(503, "busy")]
    message = OutboundMessageFactory()
    with pytest.raises(RetryLater):
        message_deliver(message_id=message.id)
    message.refresh_from_db()
    assert (message.status, message.attempts, message.error_code) == ("queued", 1, "503")
    assert message.next_attempt_at is not None


@pytest.mark.django_db
def test_429_honours_retry_after(gateway):
    gateway.script = [FakeResponse(429, "slow down", headers={"Retry-After": "7"})]
    message = OutboundMessageFactory()
    with pytest.raises(RetryLater) as caught:
        message_deliver(message_id=message.id)
    assert caught.value.countdown == 7.0


@pytest.mark.django_db
def test_a_hanging_gateway_times_out_and_is_retried(gateway, settings):
    settings.GATEWAY_TIMEOUT_SECONDS = 0.3
    gateway.script = [FakeResponse(200, {"id": "late"}, delay=1.0), FakeResponse(200, {"id": "ok"})]
    message = OutboundMessageFactory()
    with pytest.raises(RetryLater):
        message_deliver(message_id=message.id)
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("queued", "timeout")
    assert message_deliver(message_id=message.id) == "sent"


@pytest.mark.django_db
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_permanent_failure_fails_at_once(gateway, status):
    gateway.script = [FakeResponse(status, {"error": "invalid number"})]
    message = OutboundMessageFactory()
    deliver.delay(message.id)
    message.refresh_from_db()
    assert (message.status, message.attempts, message.error_code) == ("failed", 1, str(status))
    assert "invalid number" in message.error_message
    assert len(gateway.requests) == 1


@pytest.mark.django_db
def test_gives_up_after_the_last_attempt_with_the_reason(gateway, settings, eager_retries):
    settings.DELIVER_MAX_ATTEMPTS = 3
    gateway.script = [FakeResponse(500, "down")]
    message = OutboundMessageFactory()
    deliver.delay(message.id)
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 3)
    assert message.error_message.startswith("gave up after 3 attempts")


@pytest.mark.django_db
def test_unreachable_gateway_is_transient(settings):
    settings.GATEWAY_OUTBOUND_URL = "http://127.0.0.1:9/sms"
    message = OutboundMessageFactory()
    with pytest.raises(RetryLater):
        message_deliver(message_id=message.id)
    assert ChannelLog.objects.get().error


@pytest.mark.django_db
def test_gateway_answer_without_an_id_fails(gateway):
    gateway.script = [FakeResponse(200, {"ok": True})]
    message = OutboundMessageFactory()
    assert message_deliver(message_id=message.id) == "failed"


@pytest.mark.django_db
def test_deliver_twice_calls_the_provider_once(gateway):
    message = OutboundMessageFactory()
    assert message_deliver(message_id=message.id) == "sent"
    assert message_deliver(message_id=message.id) == "skipped"
    assert len(gateway.requests) == 1


@pytest.mark.django_db
def test_channel_log_has_no_configured_secret(gateway, settings):
    settings.GENERIC_WEBHOOK_TOKEN = "tok-generic-999"
    gateway.script = [FakeResponse(200, {"id": "gw-1", "echo": "gw-api-key-123"})]
    message = OutboundMessageFactory()
    message_deliver(message_id=message.id)
    log = ChannelLog.objects.get(kind="send")
    text = log.url + log.request + log.response + log.error
    assert "gw-api-key-123" not in text
    assert "tok-generic-999" not in text
    assert "Authorization: ********" in log.request
    assert (log.status_code, log.message_id) == (200, message.id)
    # the generic provider proves itself with WEBHOOK_SECRET: its callback URL carries no token
    assert "token=" not in gateway.requests[0].json()["callback_url"]


@pytest.mark.django_db
def test_send_to_an_opted_out_number_is_refused_and_stored(gateway, django_capture_on_commit_callbacks):
    suppression_add(phone="+919876543210", shortcode="57675", keyword="STOP")
    with django_capture_on_commit_callbacks(execute=True):
        message = message_send(shortcode="57675", phone="+919876543210", body="Offer!", provider="generic")
    assert (message.status, message.error_code) == ("refused", "opted_out")
    assert "STOP" in message.error_message
    assert gateway.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text,encoding,segments",
    [("Hello", "gsm7", 1), ("A" * 161, "gsm7", 2), ("नमस्ते", "ucs2", 1), ("€" * 81, "gsm7", 2)],
)
def test_every_message_records_encoding_and_segments(text, encoding, segments):
    message = message_send(shortcode="57675", phone="+919876543210", body=text, provider="console")
    assert (message.encoding, message.segments) == (encoding, segments)


@pytest.mark.django_db
def test_reply_over_the_segment_limit_is_cut_with_a_marker(caplog):
    message = message_send(
        shortcode="57675", phone="+919876543210", body="word " * 200, provider="console", segment_limit=2
    )
    assert message.segments == 2
    assert message.body.endswith("...")
    assert "cut to 2 segments" in caplog.text


@pytest.mark.django_db
def test_throughput_is_throttled_per_shortcode_queuing_not_dropping(gateway, monkeypatch):
    messages = [OutboundMessageFactory(provider_options={"max_mps": 1}) for _ in range(3)]
    outcomes = []
    with freeze_time() as clock:
        # Waiting for a token moves the frozen clock instead of the test's real time.
        monkeypatch.setattr(time, "sleep", clock.tick)
        started = time.monotonic()
        for message in messages:
            try:
                outcomes.append(message_deliver(message_id=message.id))
            except RetryLater as exc:
                outcomes.append(f"later {exc.countdown:.1f}")
        waited = time.monotonic() - started
    assert outcomes[0] == "sent"
    assert outcomes[1] == "sent"  # waited about a second for a token
    assert waited >= 1.0
    assert outcomes[2].startswith("sent") or outcomes[2].startswith("later")
    for message in messages:
        message.refresh_from_db()
    assert {m.status for m in messages} <= {"sent", "queued"}
    assert all(m.attempts <= 1 for m in messages)


@pytest.mark.django_db
def test_scheduled_message_is_not_sent_before_its_time(gateway):
    from datetime import timedelta

    from django.utils import timezone

    message = OutboundMessageFactory(send_after=timezone.now() + timedelta(hours=1))
    assert message_deliver(message_id=message.id) == "skipped"
    Message.objects.filter(id=message.id).update(send_after=timezone.now() - timedelta(seconds=1))
    assert message_deliver(message_id=message.id) == "sent"


# The first attempt in process (message_send with deliver_here, as replies are sent) ------


@pytest.fixture
def deliver_tasks_run():
    """The ids of the messages a deliver task ran for (on the embedded default, in this process)."""
    ran = []

    def note(sender=None, args=None, **kwargs):
        if sender is not None and sender.name == DELIVER_TASK:
            ran.append(args[0])

    task_prerun.connect(note, weak=False)
    yield ran
    task_prerun.disconnect(note)


@pytest.fixture(autouse=True)
def _no_pause_left():
    """A gateway pause another test left in this process (outbound._deliver_here_paused_until)."""
    outbound._deliver_here_paused_until.clear()
    yield
    outbound._deliver_here_paused_until.clear()


def send_reply(deliver_here: bool, **options) -> Message:
    return message_send(
        shortcode="57675",
        phone="+919876543210",
        body="Hello",
        provider="generic",
        options=SendOptions(**options),
        deliver_here=deliver_here,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("deliver_here,tasks", [(True, 0), (False, 1)], ids=["here", "by the deliver task"])
def test_a_reply_is_sent_by_the_process_that_stored_it(
    gateway, django_capture_on_commit_callbacks, deliver_tasks_run, deliver_here, tasks
):
    # when: the reply's transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        message = send_reply(deliver_here)
    # then: one send, made here or by a deliver task
    message.refresh_from_db()
    assert (message.status, message.attempts, len(gateway.requests)) == ("sent", 1, 1)
    assert len(deliver_tasks_run) == tasks


@pytest.mark.django_db
@pytest.mark.parametrize(
    "script,status,attempts,sends,tasks",
    [
        ([FakeResponse(503, "busy"), FakeResponse(200, {"id": "gw-2"})], "sent", 2, 2, 1),
        ([FakeResponse(429, "slow", headers={"Retry-After": "1"}), FakeResponse(200, {"id": "gw-2"})], "sent", 2, 2, 1),
        ([FakeResponse(400, {"error": "invalid number"})], "failed", 1, 1, 0),
        ([FakeResponse(200, {"ok": "no id"})], "failed", 1, 1, 0),
    ],
    ids=["503 then 200", "429 then 200", "400", "no id"],
)
def test_a_first_attempt_that_fails_is_retried_by_the_deliver_task_once(
    gateway, django_capture_on_commit_callbacks, deliver_tasks_run, script, status, attempts, sends, tasks
):
    gateway.script = script
    with django_capture_on_commit_callbacks(execute=True):
        message = send_reply(deliver_here=True)
    message.refresh_from_db()
    assert (message.status, message.attempts, len(gateway.requests)) == (status, attempts, sends)
    assert deliver_tasks_run == [message.id] * tasks
    assert Message.objects.filter(direction="out").count() == 1


@pytest.mark.django_db
def test_a_first_attempt_over_the_throughput_waits_in_the_deliver_task_not_as_an_attempt(
    gateway, django_capture_on_commit_callbacks, deliver_tasks_run, monkeypatch
):
    # given: a shortcode of 1 message/s whose token another worker takes first, twice
    competitor_takes = [2]

    with freeze_time() as clock:

        def sleep(seconds):
            clock.tick(seconds)
            if competitor_takes[0]:
                competitor_takes[0] -= 1
                token_bucket_wait("mps:57675", rate=1.0)

        monkeypatch.setattr(time, "sleep", sleep)
        token_bucket_wait("mps:57675", rate=1.0)
        # when
        with django_capture_on_commit_callbacks(execute=True):
            message = send_reply(deliver_here=True, max_mps=1)
    # then: not sent here; the deliver task waited for a token and sent it, one attempt
    message.refresh_from_db()
    assert (message.status, message.attempts, len(gateway.requests)) == ("sent", 1, 1)
    assert deliver_tasks_run == [message.id]


@pytest.mark.django_db
def test_a_reply_whose_process_died_before_sending_is_sent_once_by_the_sweep(
    gateway, django_capture_on_commit_callbacks, settings
):
    # given: the reply committed, and the process gone before its first attempt
    with django_capture_on_commit_callbacks(execute=False):
        message = send_reply(deliver_here=True)
    # when: the outbox sweep comes by once the reply has settled
    later = timezone.now() + timedelta(seconds=settings.OUTBOX_SWEEP_AFTER_SECONDS + 1)
    assert outbox_sweep(now=later)["requeued"] == 1
    assert outbox_sweep(now=later + timedelta(seconds=settings.OUTBOX_SWEEP_AFTER_SECONDS + 1))["requeued"] == 0
    # then
    message.refresh_from_db()
    assert (message.status, len(gateway.requests)) == ("sent", 1)


@pytest.mark.django_db
@pytest.mark.parametrize("seconds_later,here", [(1, False), (29, False), (31, True)])
def test_after_a_gateway_failure_replies_go_to_the_deliver_task_for_a_while(
    gateway, django_capture_on_commit_callbacks, deliver_tasks_run, seconds_later, here
):
    # given: a first attempt in process that met a gateway error, retried by the task
    gateway.script = [FakeResponse(503, "busy"), FakeResponse(200, {"id": "gw-1"}), FakeResponse(200, {"id": "gw-2"})]
    with freeze_time() as clock:
        with django_capture_on_commit_callbacks(execute=True):
            first = send_reply(deliver_here=True)
        assert deliver_tasks_run == [first.id]
        # when: the next reply of the shortcode
        clock.tick(seconds_later)
        with django_capture_on_commit_callbacks(execute=True):
            second = send_reply(deliver_here=True)
    # then: sent once, by the task while the pause lasts, here after it
    second.refresh_from_db()
    assert (second.status, second.attempts) == ("sent", 1)
    assert deliver_tasks_run == [first.id] if here else [first.id, second.id]
    assert len(gateway.requests) == 3

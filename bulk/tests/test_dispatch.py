"""
Sending a batch: at the shortcode's messages per second, charged per segment, behind
replies, inside the promotional window; on the embedded default and on a real worker.
"""

import time

import pytest
from django.conf import settings
from django.utils import timezone
from freezegun import freeze_time

from bulk.models import Batch
from bulk.services import RecipientInput, batch_create, batch_dispatch_tick, batch_progress, batches_tick
from commands.tests.factories import ShortcodeFactory
from conftest import WEBHOOK_SECRET, wait_until
from conversations.tests.factories import BALANCE, PHONE, service_shortcode
from delivery.deliver import message_deliver
from delivery.models import Message, Suppression
from delivery.statuses import Direction, Status
from delivery.tests.factories import OutboundMessageFactory
from smsgate.embedded_beat import EmbeddedBeat
from templates.models import Template
from templates.tests.factories import dlt_registration

# 11:30 in India: inside the promotional window.
DAYTIME = "2026-12-01 06:00:00"


def recipients(count: int, start: int = 0) -> list[RecipientInput]:
    return [RecipientInput(to=f"+9198{start + n:08d}") for n in range(count)]


def handed_over(batch: Batch) -> int:
    return Message.objects.filter(batch_recipient__batch=batch).count()


def inbound(client, text: str, message_id: str):
    return client.post(
        "/webhooks/generic/inbound/",
        {"from": PHONE, "to": "57675", "body": text, "id": message_id},
        content_type="application/json",
        HTTP_X_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "per_tick"),
    [
        ("One segment", 8),  # 10 per second, less the fifth kept for replies
        ("Two segments " + "x" * 150, 4),  # the budget is counted in segments
    ],
)
def test_a_batch_is_handed_over_one_tick_at_a_time_at_the_shortcodes_speed(text, per_tick):
    shortcode = ShortcodeFactory(number="57675", max_mps=10)
    with freeze_time(DAYTIME) as clock:
        batch = batch_create(shortcode=shortcode, text=text, recipients=recipients(3 * per_tick + 1))
        seen = []
        # when: the periodic tick runs four times a second apart
        for _ in range(4):
            batches_tick()
            seen.append(handed_over(batch))
            clock.tick(1)
        batches_tick()
    # then
    assert seen == [per_tick, 2 * per_tick, 3 * per_tick, 3 * per_tick + 1]
    batch.refresh_from_db()
    assert batch.state == "done"
    assert batch.finished_at is not None


@pytest.mark.django_db
def test_a_tick_that_runs_twice_hands_nobody_over_twice():
    shortcode = ShortcodeFactory(number="57675", max_mps=10)
    with freeze_time(DAYTIME):
        batch = batch_create(shortcode=shortcode, text="Hi", recipients=recipients(20))
        first = batch_dispatch_tick(batch_id=batch.id)
        # the broker delivers the same task again, or the periodic job and the chain meet
        again = batch_dispatch_tick(batch_id=batch.id)
    assert first["handed_over"] == 8
    assert again == {"skipped": "not_due", "next_in": 1.0}
    assert handed_over(batch) == 8
    assert Message.objects.values("phone").distinct().count() == 8


@pytest.mark.django_db
def test_running_batches_of_one_shortcode_share_its_speed():
    shortcode = ShortcodeFactory(number="57675", max_mps=10)
    with freeze_time(DAYTIME) as clock:
        first = batch_create(shortcode=shortcode, text="First", recipients=recipients(20))
        batches_tick()
        second = batch_create(shortcode=shortcode, text="Second", recipients=recipients(20, start=100))
        clock.tick(1)
        batches_tick()
    # the first went alone (8), then both shared the 8 of a second
    assert (handed_over(first), handed_over(second)) == (12, 4)


@pytest.mark.django_db
def test_a_number_that_opts_out_after_the_batch_was_accepted_is_skipped_and_counted():
    shortcode = ShortcodeFactory(number="57675", max_mps=100)
    batch = batch_create(shortcode=shortcode, text="Hi", recipients=recipients(3))
    Suppression.objects.create(phone="+919800000001", shortcode="57675", keyword="STOP")
    # when
    outcome = batch_dispatch_tick(batch_id=batch.id)
    # then
    assert outcome["handed_over"] == 2
    assert outcome["suppressed"] == 1
    assert not Message.objects.filter(phone="+919800000001").exists()
    assert batch_progress(batch_id=batch.id).suppressed == 1


@pytest.mark.django_db
def test_a_message_takes_one_token_of_the_shortcodes_speed_per_segment(monkeypatch):
    four_segments = OutboundMessageFactory(
        provider="console", body="y" * 500, segments=4, provider_options={"max_mps": 4}
    )
    next_one = OutboundMessageFactory(provider="console", body="Hi", segments=1, provider_options={"max_mps": 4})
    waits = []
    with freeze_time(DAYTIME) as clock:
        monkeypatch.setattr(time, "sleep", lambda seconds: (waits.append(seconds), clock.tick(seconds)))
        assert message_deliver(message_id=four_segments.id) == "sent"
        assert waits == []
        # when: the four tokens a second are spent, the next message waits a quarter of a second
        assert message_deliver(message_id=next_one.id) == "sent"
    assert waits == [0.25]


@pytest.mark.django_db
@pytest.mark.parametrize(("reserve", "reply_waited"), [(0.2, False), (0.0, True)])
def test_a_reply_overtakes_a_running_batch_without_waiting_for_its_tokens(
    client, monkeypatch, settings, django_capture_on_commit_callbacks, reserve, reply_waited
):
    # given: a batch whose first tick took all the shortcode's speed but the reply reserve
    settings.BULK_REPLY_RESERVE = reserve
    shortcode = service_shortcode(max_mps=5)
    waits = []
    with freeze_time(DAYTIME) as clock:
        monkeypatch.setattr(time, "sleep", lambda seconds: (waits.append(seconds), clock.tick(seconds)))
        with django_capture_on_commit_callbacks(execute=True):
            batch = batch_create(shortcode=shortcode, text="Offer of the day", recipients=recipients(20))
        sent_by_batch = Message.objects.filter(batch_recipient__batch=batch, status=Status.SENT).count()
        assert waits == []
        # when: an SMS arrives while the batch still has recipients to go
        with django_capture_on_commit_callbacks(execute=True):
            assert inbound(client, "2", "overtake-1").status_code == 200
    # then: its answer is sent now, ahead of the batch's remaining recipients
    reply = Message.objects.get(direction=Direction.OUTBOUND, in_reply_to__isnull=False)
    assert (reply.body, reply.status) == (BALANCE, Status.SENT)
    assert batch_progress(batch_id=batch.id).queued == 20 - sent_by_batch
    # with a reserve it did not wait at all; without one it waits for the batch's tokens
    assert bool(waits) is reply_waited


@pytest.mark.django_db
def test_a_promotional_batch_outside_the_window_pauses_and_resumes_when_it_opens():
    dlt_registration("Big sale on {#var#} today!", sender_id="SMSGTE", category=Template.Category.PROMOTIONAL)
    shortcode = ShortcodeFactory(number="57675", dlt_bound=True, sender_id="SMSGTE", max_mps=100)
    # 21:30 in India: the window (09:00-21:00) is closed
    with freeze_time("2026-12-01 16:00:00") as clock:
        batch = batch_create(
            shortcode=shortcode, text="Big sale on {item} today!", variables={"item": "shoes"}, recipients=recipients(3)
        )
        # when
        outcome = batch_dispatch_tick(batch_id=batch.id)
        # then: paused until 09:00 India time, nothing dropped
        assert outcome == {"paused_until": "2026-12-02T03:30:00+00:00"}
        batch.refresh_from_db()
        assert batch.state == "paused_for_window"
        assert handed_over(batch) == 0
        assert batch_progress(batch_id=batch.id).queued == 3
        clock.move_to("2026-12-02 03:29:59")
        assert batches_tick() == {"ticked": 0}
        # when: the window opens
        clock.move_to("2026-12-02 03:30:00")
        assert batches_tick() == {"ticked": 1}
    # then: all three are handed over, to be sent now
    batch.refresh_from_db()
    assert batch.state == "running"
    assert list(Message.objects.values_list("body", "send_after", "dlt_template_id").distinct()) == [
        ("Big sale on shoes today!", None, Template.objects.get().dlt_template_id)
    ]
    assert handed_over(batch) == 3


@pytest.mark.django_db
def test_on_the_embedded_default_the_serving_process_ticks_running_batches():
    shortcode = ShortcodeFactory(number="57675", max_mps=10)
    beat = EmbeddedBeat(settings.CELERY_BEAT_SCHEDULE)
    with freeze_time(DAYTIME) as clock:
        batch = batch_create(shortcode=shortcode, text="Hi", recipients=recipients(12))
        # when: the embedded beat's job runs, a tick apart
        for _ in range(3):
            beat.run("bulk-tick", beat.jobs["bulk-tick"][0])
            clock.tick(settings.BULK_TICK_SECONDS)
    # then
    assert handed_over(batch) == 12
    batch.refresh_from_db()
    assert batch.state == "done"
    assert settings.CELERY_BEAT_SCHEDULE["bulk-tick"]["schedule"] == settings.BULK_TICK_SECONDS


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_on_the_real_worker_a_batch_goes_at_its_pace_and_a_reply_overtakes_it(celery_worker, provider_server, client):
    # given: a shortcode of 5 messages a second (4 for the batch), on a local gateway
    shortcode = service_shortcode(
        provider="generic",
        provider_config={"outbound_url": f"{provider_server.url}/send"},
        max_mps=5,
        inbound_limit_per_minute=1000,
    )
    batch = batch_create(shortcode=shortcode, text="Offer of the day", recipients=recipients(16))
    wait_until(lambda: len(provider_server.requests) >= 4, timeout=20, what="the batch's first tick")
    # when: an SMS arrives while the batch runs
    asked_at = timezone.now()
    assert inbound(client, "2", "overtake-1").status_code == 200
    wait_until(lambda: Message.objects.filter(in_reply_to__isnull=False, status=Status.SENT).exists(), what="the reply")
    pending_when_answered = batch_progress(batch_id=batch.id).queued
    wait_until(
        lambda: Message.objects.filter(batch_recipient__batch=batch, status=Status.SENT).count() == 16,
        timeout=30,
        what="the whole batch",
    )
    # then: the reply went out at once, ahead of the batch's remaining recipients
    reply = Message.objects.get(in_reply_to__isnull=False)
    assert (reply.sent_at - asked_at).total_seconds() < 1.5
    assert pending_when_answered > 0
    order = [request.json()["to"] for request in provider_server.requests]
    assert order.index(PHONE) < len(order) - 1
    # and the batch kept to its pace: 16 at 4 a second take three seconds or more
    sent = sorted(Message.objects.filter(batch_recipient__batch=batch).values_list("sent_at", flat=True))
    assert (sent[-1] - sent[0]).total_seconds() >= 2.5
    batch.refresh_from_db()
    wait_until(lambda: Batch.objects.get(id=batch.id).state == "done", timeout=10, what="the batch done")


@pytest.mark.django_db
def test_a_late_tick_catches_up_at_most_three_ticks_worth():
    shortcode = ShortcodeFactory(number="57675", max_mps=10)
    with freeze_time(DAYTIME) as clock:
        batch = batch_create(shortcode=shortcode, text="Hi", recipients=recipients(60))
        seen = []
        for late_by in (0, 3, 10):  # seconds after the batch's start, then two and nine seconds late
            clock.tick(late_by)
            batches_tick()
            seen.append(handed_over(batch))
    assert seen == [8, 8 + 24, 8 + 24 + 24]

"""Order per phone, and the sweep that re-queues what the broker lost."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from conversations import tasks as conversation_tasks
from conversations.handling import PhoneBusy, inbound_handle
from conversations.receiving import message_receive
from conversations.sweeps import inbound_sweep
from conversations.tasks import handle_inbound as handle_inbound_task
from conversations.tests.factories import ASK_NAME, BALANCE, PHONE, SUPPORT, registered, service_shortcode
from delivery.models import Message
from delivery.providers.base import InboundSMS
from delivery.statuses import Direction, Status
from delivery.sweeps import outbox_sweep
from delivery.tests.factories import OutboundMessageFactory
from delivery.throttle import lock_acquire, lock_release


@pytest.fixture
def shortcode(db):
    return service_shortcode()


def receive(text):
    message, _ = message_receive(
        provider="generic", sms=InboundSMS(sender=PHONE, recipient="57675", body=text, provider_message_id=None)
    )
    return message


def test_a_later_message_handles_the_earlier_one_first(shortcode):
    # given: "1" then "Asha" stored, their tasks arriving in the wrong order
    first, second = receive("1"), receive("Asha")
    # when
    inbound_handle(message_id=second.id)
    inbound_handle(message_id=first.id)
    # then: the flow did not skip a step
    replies = Message.objects.filter(direction=Direction.OUTBOUND).order_by("id")
    assert [(r.in_reply_to_id, r.body) for r in replies] == [
        (first.id, ASK_NAME),
        (second.id, registered("Asha")),
    ]


def test_earlier_unhandled_messages_are_handled_oldest_first(shortcode):
    # given: a whole conversation stored, none of it handled yet
    register, name, balance, support = receive("1"), receive("Asha"), receive("2"), receive("3")
    # when: the last message's task runs first
    inbound_handle(message_id=support.id)
    # then: each reply follows from the one before it
    replies = Message.objects.filter(direction=Direction.OUTBOUND).order_by("id")
    assert [(r.in_reply_to_id, r.body) for r in replies] == [
        (register.id, ASK_NAME),
        (name.id, registered("Asha")),
        (balance.id, BALANCE),
        (support.id, SUPPORT),
    ]


def test_a_phone_being_handled_elsewhere_waits(shortcode):
    message = receive("2")
    assert lock_acquire(f"phone:57675:{PHONE}", timeout=30)
    try:
        with pytest.raises(PhoneBusy):
            inbound_handle(message_id=message.id)
    finally:
        lock_release(f"phone:57675:{PHONE}")
    assert inbound_handle(message_id=message.id) is not None


def test_in_process_handling_waits_for_a_phone_busy_for_a_moment(shortcode):
    # given: another request is handling this phone, and is done a moment later
    message = receive("2")
    lock = f"phone:57675:{PHONE}"
    assert lock_acquire(lock, timeout=30)
    threading.Timer(0.3, lock_release, args=[lock]).start()
    # when: its task runs in-process, as on the embedded default
    result = handle_inbound_task.delay(message.id)
    # then
    assert result.get() is True
    message.refresh_from_db()
    assert message.status == "handled"
    assert Message.objects.filter(in_reply_to=message).count() == 1


def test_in_process_handling_leaves_a_phone_busy_too_long_to_the_sweep(shortcode, monkeypatch):
    monkeypatch.setattr(conversation_tasks, "IN_PROCESS_RETRY_DELAYS", (0.01, 0.02))
    message = receive("2")
    lock = f"phone:57675:{PHONE}"
    # given: the phone stays busy through every retry
    assert lock_acquire(lock, timeout=30)
    try:
        # when
        assert handle_inbound_task.delay(message.id).get() is False
    finally:
        lock_release(lock)
    # then: nothing lost: still `received`, and the sweep answers it
    message.refresh_from_db()
    assert message.status == "received"
    assert inbound_sweep(now=timezone.now() + timedelta(minutes=2)) == {"requeued": 1}
    assert Message.objects.filter(in_reply_to=message).count() == 1


def test_inbound_sweep_requeues_unhandled_messages(shortcode, settings):
    # given: one inbound the broker lost long ago, one just received
    stale, fresh = receive("2"), receive("3")
    Message.objects.filter(id=stale.id).update(updated_at=timezone.now() - timedelta(minutes=5))
    # when (tasks run in-process here)
    result = inbound_sweep()
    # then
    assert result == {"requeued": 1}
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, fresh.status) == ("handled", "received")


def test_outbox_sweep_requeues_stuck_and_due_messages(db, settings):
    settings.GATEWAY_OUTBOUND_URL = "http://127.0.0.1:9/unused"
    now = timezone.now()
    lost = OutboundMessageFactory(provider="console")
    waiting_retry = OutboundMessageFactory(provider="console", next_attempt_at=now + timedelta(minutes=1))
    scheduled = OutboundMessageFactory(provider="console", send_after=now + timedelta(hours=2))
    due = OutboundMessageFactory(provider="console", send_after=now - timedelta(seconds=1))
    dead_worker = OutboundMessageFactory(provider="console", status=Status.SENDING)
    Message.objects.update(updated_at=now - timedelta(minutes=15))
    Message.objects.filter(id=waiting_retry.id).update(updated_at=now)

    result = outbox_sweep()

    statuses = dict(Message.objects.values_list("id", "status"))
    assert result == {"requeued": 3, "reset": 1}
    assert statuses[lost.id] == "sent"
    assert statuses[due.id] == "sent"
    assert statuses[dead_worker.id] == "sent"
    assert statuses[waiting_retry.id] == "queued"
    assert statuses[scheduled.id] == "queued"


def test_sweeps_requeue_only_rows_pending_longer_than_the_settle_time(shortcode, settings):
    settings.OUTBOX_SWEEP_AFTER_SECONDS = 60
    with freeze_time("2026-01-05 10:00:00") as clock:
        # given: an inbound and an outbound the broker lost a minute ago...
        old_inbound = receive("2")
        old_outbound = OutboundMessageFactory(provider="console")
        clock.tick(timedelta(seconds=50))
        # ...and an inbound and an outbound stored just now, their tasks still on the way
        fresh_inbound = receive("3")
        fresh_outbound = OutboundMessageFactory(provider="console")
        clock.tick(timedelta(seconds=11))
        # when
        inbound_result, outbox_result = inbound_sweep(), outbox_sweep()
    # then: only the old ones were queued again (the old inbound's reply is itself fresh)
    assert inbound_result == {"requeued": 1}
    assert outbox_result == {"requeued": 1, "reset": 0}
    statuses = dict(Message.objects.values_list("id", "status"))
    assert (statuses[old_inbound.id], statuses[fresh_inbound.id]) == ("handled", "received")
    assert (statuses[old_outbound.id], statuses[fresh_outbound.id]) == ("sent", "queued")
    assert Message.objects.get(in_reply_to=old_inbound).status == "queued"


def test_overlapping_sweeps_skip(db):
    assert lock_acquire("sweep:outbox", timeout=30)
    try:
        assert outbox_sweep() == {"skipped": True}
    finally:
        lock_release("sweep:outbox")

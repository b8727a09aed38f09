"""Order per phone, and the sweep that re-queues what the broker lost."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.services import PhoneBusy, inbound_handle, inbound_sweep, message_receive
from delivery.models import Message
from delivery.providers.base import InboundSMS
from delivery.services import outbox_sweep
from delivery.tests.factories import OutboundMessageFactory
from delivery.throttle import lock_acquire, lock_release

PHONE = "+919876543210"


@pytest.fixture
def demo(db):
    call_command("seed_demo", verbosity=0)


def receive(text):
    message, _ = message_receive(
        provider="generic", sms=InboundSMS(sender=PHONE, recipient="57675", body=text, provider_message_id=None)
    )
    return message


def test_a_later_message_handles_the_earlier_one_first(demo):
    # given: "1" then "Asha" stored, their tasks arriving in the wrong order
    first, second = receive("1"), receive("Asha")
    # when
    inbound_handle(message_id=second.id)
    inbound_handle(message_id=first.id)
    # then: the flow did not skip a step
    replies = Message.objects.filter(direction="out").order_by("id")
    assert [(r.in_reply_to_id, r.body) for r in replies] == [
        (first.id, "Welcome! Please reply with your name."),
        (second.id, "Thank you Asha, you are registered."),
    ]


def test_a_phone_being_handled_elsewhere_waits(demo):
    message = receive("2")
    assert lock_acquire(f"phone:57675:{PHONE}", timeout=30)
    try:
        with pytest.raises(PhoneBusy):
            inbound_handle(message_id=message.id)
    finally:
        lock_release(f"phone:57675:{PHONE}")
    assert inbound_handle(message_id=message.id) is not None


def test_inbound_sweep_requeues_unhandled_messages(demo, settings):
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
    dead_worker = OutboundMessageFactory(provider="console", status="sending")
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


def test_overlapping_sweeps_skip(db):
    assert lock_acquire("sweep:outbox", timeout=30)
    try:
        assert outbox_sweep() == {"skipped": True}
    finally:
        lock_release("sweep:outbox")

"""Periodic jobs a serving process runs itself on the embedded default (no broker, so no celery beat)."""

from datetime import timedelta

import pytest
from freezegun import freeze_time

from conversations.receiving import message_receive
from conversations.tests.factories import service_shortcode
from delivery.models import Message
from delivery.providers.base import InboundSMS
from delivery.statuses import Direction
from smsgate.embedded_beat import EmbeddedBeat, embedded_beat_start


@pytest.mark.django_db
def test_the_sweeps_run_every_interval_and_answer_what_was_left(settings):
    service_shortcode()
    settings.OUTBOX_SWEEP_AFTER_SECONDS = 10
    with freeze_time("2026-01-05 10:00:00") as clock:
        # given: an inbound whose in-process handling did not finish, and a server starting
        sms = InboundSMS(sender="+919876543210", recipient="57675", body="2", provider_message_id="left-1")
        inbound, _ = message_receive(provider="generic", sms=sms)
        beat = EmbeddedBeat(settings.CELERY_BEAT_SCHEDULE)
        # when: less than one interval passes
        clock.tick(timedelta(seconds=settings.SWEEP_INTERVAL_SECONDS - 1))
        beat.tick()
        # then: nothing ran yet
        inbound.refresh_from_db()
        assert inbound.status == "received"
        # when: the interval is over
        clock.tick(timedelta(seconds=2))
        beat.tick()
    # then: the inbound sweep answered it
    inbound.refresh_from_db()
    assert inbound.status == "handled"
    assert Message.objects.filter(direction=Direction.OUTBOUND, in_reply_to=inbound).count() == 1


def test_the_schedule_runs_in_process_only_without_a_broker(broker_in_use):
    assert embedded_beat_start() is None


def test_without_a_broker_a_daemon_thread_runs_the_schedule():
    beat = embedded_beat_start()
    try:
        assert beat is not None
        assert set(beat.jobs) == {
            "outbox-sweep",
            "inbound-sweep",
            "channel-log-purge",
            "report-payload-purge",
            "message-purge",
            "callback-sweep",
            "idempotency-key-purge",
            "bulk-tick",
        }
        assert beat._thread.daemon and beat._thread.is_alive()
    finally:
        beat.stop()
    assert not beat._thread.is_alive()

"""Retention: what is older than its limit goes (or, for report payloads, is emptied), batch by batch."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time

from delivery import tasks
from delivery.models import ChannelLog, DeliveryReport, Message, Suppression
from delivery.statuses import Direction, Status
from delivery.throttle import lock_acquire

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.fixture(autouse=True)
def _retention(settings):
    settings.RETENTION_PERIODS = {"channel_log": 7, "report_payload": 30, "message": 180}
    settings.RETENTION_BATCH_SIZE = 2


def at(moment: datetime, create, **fields):
    """A row created at `moment` (auto_now_add reads the frozen clock)."""
    with freeze_time(moment):
        return create(**fields)


def message(moment: datetime, direction: Direction = Direction.OUTBOUND, **fields) -> Message:
    status = Status.HANDLED if direction == Direction.INBOUND else Status.SENT
    fields = {"shortcode": "57675", "phone": "+919876543210", "provider": "generic", "body": "hi", **fields}
    return at(moment, Message.objects.create, direction=direction, status=status, **fields)


def report(moment: datetime, msg: Message | None = None) -> DeliveryReport:
    return at(
        moment, DeliveryReport.objects.create, message=msg, provider="generic", raw_payload={"status": "delivered"}
    )


def statements(prefix: str, queries) -> int:
    return sum(1 for query in queries if query["sql"].startswith(prefix))


@pytest.mark.django_db
def test_channel_logs_just_past_the_limit_go_in_batches_and_younger_ones_stay():
    # given: five rows a second past 7 days, two a second short of it
    limit = NOW - timedelta(days=7)
    for _ in range(5):
        at(limit - SECOND, ChannelLog.objects.create, kind="send", provider="generic")
    young = [at(limit + SECOND, ChannelLog.objects.create, kind="send", provider="generic") for _ in range(2)]
    # when: batches of 2
    with freeze_time(NOW), CaptureQueriesContext(connection) as queries:
        result = tasks.channel_log_purge.delay().get()
    # then: three batches, each its own delete, removed all five
    assert result == {"deleted": 5}
    assert statements('DELETE FROM "delivery_channellog"', queries) == 3
    assert sorted(ChannelLog.objects.values_list("id", flat=True)) == [row.id for row in young]


@pytest.mark.django_db
def test_report_payloads_past_the_limit_are_emptied_and_the_reports_kept():
    # given
    limit = NOW - timedelta(days=30)
    msg = message(NOW - timedelta(days=40))
    old = [report(limit - SECOND, msg) for _ in range(3)]
    young = report(limit + SECOND, msg)
    # when
    with freeze_time(NOW):
        result = tasks.report_payload_purge.delay().get()
    # then
    assert result == {"emptied": 3}
    assert DeliveryReport.objects.count() == 4
    assert [DeliveryReport.objects.get(id=row.id).raw_payload for row in old] == [{}, {}, {}]
    assert DeliveryReport.objects.get(id=young.id).raw_payload == {"status": "delivered"}
    # and a second run finds nothing left to empty
    with freeze_time(NOW):
        assert tasks.report_payload_purge.delay().get() == {"emptied": 0}


@pytest.mark.django_db
def test_messages_past_the_limit_go_with_their_reports_and_what_links_to_them_stays():
    # given: an old conversation (inbound, reply, the reply's report and channel log, an opt-out)
    limit = NOW - timedelta(days=180)
    inbound = message(limit - 2 * SECOND, Direction.INBOUND)
    reply = message(limit - SECOND, in_reply_to=inbound)
    extra = [message(limit - SECOND) for _ in range(3)]
    report(limit - SECOND, reply)
    log = at(NOW - timedelta(days=1), ChannelLog.objects.create, kind="send", provider="generic", message=reply)
    optout = Suppression.objects.create(phone="+919876543210", shortcode="57675", message=inbound)
    unmatched_old, unmatched_young = report(limit - SECOND), report(limit + SECOND)
    # and a message a second short of the limit, answering the old inbound
    young = message(limit + SECOND, in_reply_to=inbound)
    young_report = report(limit + SECOND, young)
    # when: batches of 2
    with freeze_time(NOW), CaptureQueriesContext(connection) as queries:
        result = tasks.message_purge.delay().get()
    # then: five messages in three batches, their report and the unmatched old one
    assert result == {"messages": 5, "reports": 2}
    assert statements('DELETE FROM "delivery_message"', queries) == 3
    assert list(Message.objects.values_list("id", flat=True)) == [young.id]
    assert sorted(DeliveryReport.objects.values_list("id", flat=True)) == [unmatched_young.id, young_report.id]
    assert not Message.objects.filter(id__in=[row.id for row in extra]).exists()
    # the foreign keys' SET_NULL: the rows stay, the link goes
    log.refresh_from_db()
    optout.refresh_from_db()
    young.refresh_from_db()
    assert (log.message_id, optout.message_id, young.in_reply_to_id) == (None, None, None)
    assert not DeliveryReport.objects.filter(id=unmatched_old.id).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "period,task,nothing",
    [
        ("channel_log", tasks.channel_log_purge, {"deleted": 0}),
        ("report_payload", tasks.report_payload_purge, {"emptied": 0}),
        ("message", tasks.message_purge, {"messages": 0, "reports": 0}),
    ],
)
def test_a_period_of_zero_days_keeps_rows_for_ever(settings, period, task, nothing):
    settings.RETENTION_PERIODS = {**settings.RETENTION_PERIODS, period: 0}
    msg = message(NOW - timedelta(days=3000))
    report(NOW - timedelta(days=3000), msg)
    at(NOW - timedelta(days=3000), ChannelLog.objects.create, kind="send", provider="generic", message=msg)
    with freeze_time(NOW):
        assert task.delay().get() == nothing
    assert (Message.objects.count(), DeliveryReport.objects.count(), ChannelLog.objects.count()) == (1, 1, 1)
    assert DeliveryReport.objects.get().raw_payload == {"status": "delivered"}


@pytest.mark.django_db
def test_a_purge_already_running_elsewhere_is_skipped():
    message(NOW - timedelta(days=200))
    assert lock_acquire("retention:message", timeout=60)
    with freeze_time(NOW):
        assert tasks.message_purge.delay().get() == {"skipped": True}
    assert Message.objects.count() == 1


def test_the_purges_are_scheduled_under_stable_names(settings):
    schedule = {name: entry["task"] for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}
    assert schedule["channel-log-purge"] == "delivery.tasks.channel_log_purge"
    assert schedule["report-payload-purge"] == "delivery.tasks.report_payload_purge"
    assert schedule["message-purge"] == "delivery.tasks.message_purge"

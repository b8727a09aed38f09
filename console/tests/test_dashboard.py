"""The dashboard on the admin index: who sees it, what it counts, and what it costs."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time

from commands.tests.factories import CommandFactory, ShortcodeFactory
from console.charts import Column, column_chart_svg
from console.dashboard import dashboard_figures, report_delay_median, report_delay_median_ordered
from conversations.models import SupportTicket
from delivery.models import Message
from delivery.statuses import Direction, Status
from delivery.tests.factories import InboundMessageFactory, OutboundMessageFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 30, tzinfo=dt.UTC)


def at(hours_ago: float, factory, **fields) -> Message:
    """A message stored `hours_ago` before NOW."""
    with freeze_time(NOW - dt.timedelta(hours=hours_ago)):
        return factory(**fields)


def delivered(*, after_seconds: float, provider: str = "generic", hours_ago: float = 1) -> Message:
    sent = NOW - dt.timedelta(hours=hours_ago)
    return at(
        hours_ago,
        OutboundMessageFactory,
        provider=provider,
        status=Status.DELIVERED,
        sent_at=sent,
        delivered_at=sent + dt.timedelta(seconds=after_seconds),
    )


def staff(*permissions: str):
    user = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


# Who sees it -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "permissions, sees_dashboard",
    [
        (("delivery.view_message",), True),
        (("commands.view_shortcode",), False),
        ((), False),
    ],
)
def test_the_dashboard_is_shown_only_to_staff_who_may_read_messages(client, permissions, sees_dashboard):
    client.force_login(staff(*permissions))

    response = client.get("/admin/")

    assert response.status_code == 200
    assert ('id="console-dashboard"' in response.text) is sees_dashboard
    assert "Site administration" in response.text or "Shortcodes, messages and templates" in response.text


@pytest.mark.parametrize(
    "permissions, links",
    [
        (("delivery.view_message",), {"/admin/console/conversation/"}),
        (
            ("delivery.view_message", "delivery.add_message", "commands.change_command"),
            {"/admin/console/conversation/", "/admin/console/send/", "/admin/console/simulator/"},
        ),
    ],
)
def test_the_dashboard_links_the_console_pages_each_user_may_open(client, permissions, links):
    client.force_login(staff(*permissions))

    text = client.get("/admin/").text

    shown = {
        path
        for path in ("/admin/console/conversation/", "/admin/console/send/", "/admin/console/simulator/")
        if f'href="{path}" class="console-link"' in text
    }
    assert shown == links


def test_a_superuser_sees_the_dashboard_with_the_app_list_below_it(admin_client):
    response = admin_client.get("/admin/")

    assert response.status_code == 200
    text = response.text
    assert text.index('id="console-dashboard"') < text.index('class="app-')
    assert "<svg" in text and "Messages per hour" in text


def test_an_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get("/admin/?window=7d")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize("window, bars", [("24h", 24), ("7d", 168), ("bogus", 24), ("", 24)])
def test_the_window_toggle_chooses_the_last_24_hours_or_7_days(admin_client, window, bars):
    response = admin_client.get("/admin/", {"window": window})

    assert response.status_code == 200
    # One bar per series per hour.
    assert response.text.count('<rect x="') == bars * 2 + 2  # + the two legend swatches


# What it counts ----------------------------------------------------------------------


def test_messages_are_counted_per_hour_and_direction_within_the_window():
    at(0.2, InboundMessageFactory)  # 12:18, this hour
    at(0.3, OutboundMessageFactory)
    at(0.4, OutboundMessageFactory)
    at(5, InboundMessageFactory)  # 07:30
    at(30, InboundMessageFactory)  # yesterday: only in the 7-day window
    at(24 * 8, InboundMessageFactory)  # in neither

    day = dashboard_figures(now=NOW, window="24h")
    week = dashboard_figures(now=NOW, window="7d")

    assert len(day.hours) == 24 and len(week.hours) == 168
    assert day.hours[-1].hour == dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
    assert (day.hours[-1].inbound, day.hours[-1].outbound) == (1, 2)
    seven = next(h for h in day.hours if h.hour.hour == 7)
    assert (seven.inbound, seven.outbound) == (1, 0)
    assert (day.inbound, day.outbound) == (2, 2)
    assert (week.inbound, week.outbound) == (3, 2)


def test_the_delivery_rate_per_provider_counts_settled_messages_only():
    for _ in range(3):
        delivered(after_seconds=5, provider="twilio")
    at(1, OutboundMessageFactory, provider="twilio", status=Status.UNDELIVERED, error_code="30003")
    at(1, OutboundMessageFactory, provider="twilio", status=Status.SENT)  # awaiting its report
    at(1, OutboundMessageFactory, provider="twilio", status=Status.REFUSED, error_code="opted_out")
    at(1, OutboundMessageFactory, provider="console", status=Status.SENT)

    providers = {row.provider: row for row in dashboard_figures(now=NOW, window="24h").providers}

    twilio = providers["twilio"]
    assert (twilio.outbound, twilio.delivered, twilio.not_delivered, twilio.awaiting, twilio.refused) == (6, 3, 1, 1, 1)
    assert twilio.rate == 0.75
    assert providers["console"].rate is None  # nothing settled: no rate rather than 0%


def test_failures_are_grouped_by_reason_most_frequent_first():
    for _ in range(2):
        at(1, OutboundMessageFactory, status=Status.REFUSED, error_code="dlt_no_template")
    at(1, OutboundMessageFactory, status=Status.FAILED, error_code="timeout")
    at(1, OutboundMessageFactory, status=Status.REJECTED)  # no code: the status stands for it
    at(1, OutboundMessageFactory, status=Status.DELIVERED, delivered_at=NOW)

    failures = dashboard_figures(now=NOW, window="24h").failures

    assert [(f.reason, f.status, f.count) for f in failures] == [
        ("dlt_no_template", "refused", 2),
        ("rejected", "rejected", 1),
        ("timeout", "failed", 1),
    ]


def test_top_commands_count_the_messages_each_command_answered_per_shortcode():
    handled = {"status": Status.HANDLED, "shortcode": "57675"}
    for command in ("2", "2", "2", "1", "1"):
        at(1, InboundMessageFactory, command=command, **handled)
    at(1, InboundMessageFactory, command="", **handled)  # the menu or the unknown-code reply
    at(1, InboundMessageFactory, command="", status=Status.RATE_LIMITED, shortcode="57675")  # not answered
    at(1, InboundMessageFactory, command="9", status=Status.HANDLED, shortcode="57676")
    at(30, InboundMessageFactory, command="1", **handled)  # outside the window

    top = dashboard_figures(now=NOW, window="24h").top_commands

    assert [(c.shortcode, c.command, c.count) for c in top] == [("57675", "2", 3), ("57675", "1", 2), ("57676", "9", 1)]


@pytest.mark.parametrize(
    "delays, median",
    [
        ([], None),
        ([30], 30.0),
        ([10, 60, 20], 20.0),
        ([100, 10, 60, 20], 40.0),  # halfway between the middle two, as percentile_cont
    ],
)
def test_the_median_time_to_a_delivery_report(delays, median):
    for seconds in delays:
        delivered(after_seconds=seconds)
    at(1, OutboundMessageFactory, status=Status.SENT)  # no report yet: not timed

    figures = dashboard_figures(now=NOW, window="24h")

    assert figures.median_report_seconds == median
    assert figures.reports_timed == len(delays)


def test_open_tickets_are_those_not_closed():
    for status in ("open", "in_progress", "closed"):
        SupportTicket.objects.create(phone="+919876543210", shortcode="57675", issue="no signal", status=status)

    assert dashboard_figures(now=NOW, window="24h").open_tickets == 2


# What it costs -----------------------------------------------------------------------


def _messages(count: int) -> None:
    with freeze_time(NOW - dt.timedelta(hours=2)):
        Message.objects.bulk_create(
            Message(
                direction=Direction.INBOUND if n % 2 else Direction.OUTBOUND,
                status=Status.HANDLED if n % 2 else [Status.DELIVERED, Status.FAILED, Status.SENT][n % 3],
                shortcode="57675",
                phone=f"+91987650{n:04d}",
                body=str(n % 4),
                provider=["generic", "twilio", "console"][n % 3],
                error_code="" if n % 3 else "timeout",
                sent_at=NOW - dt.timedelta(hours=2),
                delivered_at=NOW - dt.timedelta(hours=2) + dt.timedelta(seconds=n % 50),
            )
            for n in range(count)
        )


def _dashboard_queries(admin_client) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get("/admin/", {"window": "7d"})
    assert response.status_code == 200
    return len(captured)


def test_the_dashboard_page_runs_the_same_queries_for_10_and_1000_messages(admin_client):
    shortcode = ShortcodeFactory(number="57675")
    for code in ("1", "2", "3"):
        CommandFactory(shortcode=shortcode, code=code)
    _messages(10)
    with freeze_time(NOW):
        few = _dashboard_queries(admin_client)
        _messages(990)
        many = _dashboard_queries(admin_client)

    assert few == many


def test_the_figures_are_six_aggregate_queries_and_a_median(django_assert_num_queries):
    _messages(1000)
    # Per hour, per provider, failures, top commands, open tickets; the median two
    # (count, then the middle rows) on SQLite, one (percentile_cont) on PostgreSQL.
    expected = 6 if connection.vendor == "postgresql" else 7

    with django_assert_num_queries(expected):
        figures = dashboard_figures(now=NOW, window="24h")

    assert figures.inbound + figures.outbound == 1000


@pytest.mark.services
def test_percentile_cont_and_the_ordered_median_agree_on_postgres():
    for seconds in (3, 7, 8, 120, 41, 9):
        delivered(after_seconds=seconds)
    messages = Message.objects.all()
    delivered_rows = messages.filter(direction=Direction.OUTBOUND, status=Status.DELIVERED, sent_at__isnull=False)

    assert report_delay_median(messages) == report_delay_median_ordered(delivered_rows) == (8.5, 6)


# The chart ---------------------------------------------------------------------------


def test_chart_labels_and_titles_are_escaped():
    svg = column_chart_svg([Column(label="<b>", title='"><script>', values=(1, 2))], title="<x>")

    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg and "&lt;b&gt;" in svg

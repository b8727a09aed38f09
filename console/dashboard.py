"""
The figures on the admin index: traffic per hour, delivery per provider, failures by
reason, top commands, median time to a delivery report and open tickets, over the last
24 hours or 7 days.

Every figure is one SQL aggregate (the median two on databases without percentile_cont),
so the page costs the same number of queries for ten messages or ten million; Python
only fills the empty hours of the chart.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Q,
    QuerySet,
)
from django.db.models.functions import Extract, TruncHour
from django.utils import timezone

from conversations.models import SupportTicket
from delivery.models import Message
from delivery.statuses import Direction, Status

WINDOWS = {"24h": 24, "7d": 7 * 24}  # hours each window covers, the current one included
DEFAULT_WINDOW = "24h"
TOP_COMMANDS = 10

# A report that closed a message the carrier did not deliver.
NOT_DELIVERED = (Status.UNDELIVERED, Status.REJECTED, Status.FAILED)
# Handed to the provider, no final report yet.
AWAITING_REPORT = (Status.QUEUED, Status.SENDING, Status.SENT)


@dataclass(frozen=True)
class HourCount:
    hour: dt.datetime  # start of the hour, in the current time zone
    inbound: int
    outbound: int


@dataclass(frozen=True)
class ProviderDelivery:
    """
    One provider's outbound messages in the window. `rate` is delivered over settled
    (delivered + undelivered, rejected or failed); refused ones never reached it and
    those awaiting a report are not settled yet. None when nothing is settled.
    """

    provider: str
    outbound: int
    delivered: int
    not_delivered: int
    awaiting: int
    refused: int

    @property
    def rate(self) -> float | None:
        settled = self.delivered + self.not_delivered
        return self.delivered / settled if settled else None


@dataclass(frozen=True)
class FailureReason:
    reason: str  # the error code, or the status when the provider gave none
    status: str
    count: int


@dataclass(frozen=True)
class CommandCount:
    shortcode: str
    command: str
    count: int


@dataclass(frozen=True)
class Dashboard:
    window: str
    since: dt.datetime
    now: dt.datetime
    hours: list[HourCount]
    inbound: int
    outbound: int
    providers: list[ProviderDelivery]
    failures: list[FailureReason]
    top_commands: list[CommandCount]
    median_report_seconds: float | None  # sent to delivery report, over delivered messages
    reports_timed: int  # how many messages that median is over
    open_tickets: int


def dashboard_window(value: str | None) -> str:
    """The window a request asks for (`?window=7d`), the default for anything else."""
    return value if value in WINDOWS else DEFAULT_WINDOW


def dashboard_figures(*, now: dt.datetime, window: str) -> Dashboard:
    """
    Every figure of the dashboard over `window` (a key of WINDOWS) ending at `now`.

    The window is whole hours of the current time zone: the current hour and the ones
    before it, so the chart's first bar is as long as the others.
    """
    hour_now = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    since = hour_now - dt.timedelta(hours=WINDOWS[window] - 1)
    messages = Message.objects.filter(created_at__gte=since, created_at__lte=now)
    hours = message_hours(messages, since=since, hour_now=hour_now)
    median, timed = report_delay_median(messages)
    return Dashboard(
        window=window,
        since=since,
        now=now,
        hours=hours,
        inbound=sum(h.inbound for h in hours),
        outbound=sum(h.outbound for h in hours),
        providers=provider_delivery(messages),
        failures=failure_reasons(messages),
        top_commands=command_counts(messages),
        median_report_seconds=median,
        reports_timed=timed,
        open_tickets=SupportTicket.objects.exclude(status=SupportTicket.Status.CLOSED).count(),
    )


def message_hours(messages: QuerySet, *, since: dt.datetime, hour_now: dt.datetime) -> list[HourCount]:
    """Inbound and outbound per hour from `since` to `hour_now`, an empty hour counted as 0."""
    tz = timezone.get_current_timezone()
    rows = (
        messages.annotate(hour=TruncHour("created_at", tzinfo=tz))
        .values("hour")
        .annotate(
            inbound=Count("id", filter=Q(direction=Direction.INBOUND)),
            outbound=Count("id", filter=Q(direction=Direction.OUTBOUND)),
        )
        .order_by()
    )
    counted = {timezone.localtime(row["hour"], tz): (row["inbound"], row["outbound"]) for row in rows}
    hours = []
    hour = since
    while hour <= hour_now:
        inbound, outbound = counted.get(hour, (0, 0))
        hours.append(HourCount(hour=hour, inbound=inbound, outbound=outbound))
        # Whole hours in UTC, then back: a day-light saving change never repeats or skips a bar.
        hour = timezone.localtime(hour + dt.timedelta(hours=1), tz)
    return hours


def provider_delivery(messages: QuerySet) -> list[ProviderDelivery]:
    rows = (
        messages.filter(direction=Direction.OUTBOUND)
        .values("provider")
        .annotate(
            outbound=Count("id"),
            delivered=Count("id", filter=Q(status=Status.DELIVERED)),
            not_delivered=Count("id", filter=Q(status__in=NOT_DELIVERED)),
            awaiting=Count("id", filter=Q(status__in=AWAITING_REPORT)),
            refused=Count("id", filter=Q(status=Status.REFUSED)),
        )
        .order_by("-outbound", "provider")
    )
    return [ProviderDelivery(**row) for row in rows]


def failure_reasons(messages: QuerySet) -> list[FailureReason]:
    """Outbound messages that ended without delivery (refusals included), by reason, most first."""
    rows = (
        messages.filter(direction=Direction.OUTBOUND, status__in=(*NOT_DELIVERED, Status.REFUSED))
        .values("error_code", "status")
        .annotate(count=Count("id"))
        .order_by("-count", "error_code", "status")
    )
    return [
        FailureReason(reason=row["error_code"] or row["status"], status=row["status"], count=row["count"])
        for row in rows
    ]


def command_counts(messages: QuerySet, *, limit: int = TOP_COMMANDS) -> list[CommandCount]:
    """The commands that answered the most inbound messages (each step of a flow counts), per shortcode."""
    rows = (
        messages.filter(direction=Direction.INBOUND, status=Status.HANDLED)
        .exclude(command="")
        .values("shortcode", "command")
        .annotate(count=Count("id"))
        .order_by("-count", "shortcode", "command")[:limit]
    )
    return [CommandCount(**row) for row in rows]


class Median(Aggregate):
    """PostgreSQL's percentile_cont(0.5): the median, halfway between the middle two."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _report_delay() -> ExpressionWrapper:
    return ExpressionWrapper(F("delivered_at") - F("sent_at"), output_field=DurationField())


def report_delay_median(messages: QuerySet) -> tuple[float | None, int]:
    """
    The median seconds from `sent` to the delivery report, over delivered messages, and how
    many those are. On PostgreSQL percentile_cont; elsewhere the middle one or two rows by
    ORDER BY ... OFFSET, which gives the same value.
    """
    delivered = messages.filter(direction=Direction.OUTBOUND, status=Status.DELIVERED, sent_at__isnull=False)
    if connection.vendor == "postgresql":
        row = delivered.aggregate(
            count=Count("id"),
            median=Median(Extract(_report_delay(), "epoch")),
        )
        return row["median"], row["count"]
    return report_delay_median_ordered(delivered)


def report_delay_median_ordered(delivered: QuerySet) -> tuple[float | None, int]:
    """The median by counting, then reading the middle one or two rows in order (any database)."""
    count = delivered.count()
    if not count:
        return None, 0
    middle = (
        delivered.annotate(delay=_report_delay())
        .order_by("delay")
        .values_list("delay", flat=True)[(count - 1) // 2 : count // 2 + 1]
    )
    delays = [delay.total_seconds() for delay in middle]
    return sum(delays) / len(delays), count

"""
Prometheus metrics: what the pipeline's events count, and what is read at scrape time.

The counters and histograms below move only through `metrics_event`, the listener
delivery/apps.py registers on delivery.events. They are process-global (prometheus_client);
with PROMETHEUS_MULTIPROC_DIR set, every gunicorn and Celery worker writes its values to
files there and /metrics adds them up, so the endpoint is right whichever worker answers.

The gauges (pending messages, age of the oldest, broker queue depth, active sessions) are
not kept by any process: `ScrapeCollector` reads them from the database, the broker and
the cache when /metrics is scraped, in the serving process only (every process would read
the same rows).

Labels stay bounded: `provider` is a registered slug or "unknown"; `shortcode` a configured
shortcode's number or "other" (an inbound's `to` is the caller's text); `command` a
configured code, "other", or "none"; every other label comes from a fixed set of words.
Configured shortcodes and codes come from the app that owns them (`metrics_vocabulary_set`,
wired by conversations) and are re-read at most every VOCABULARY_SECONDS, or at once after
`metrics_vocabulary_forget`.
"""

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from delivery.models import Message
from delivery.queueing import broker_backlog
from delivery.statuses import PENDING_STATUSES, Direction, Status

logger = logging.getLogger(__name__)

OTHER = "other"
UNKNOWN = "unknown"
# How long a process trusts its list of configured shortcodes and codes.
VOCABULARY_SECONDS = 60.0

INBOUND = Counter("smsgate_inbound", "Inbound SMS stored (duplicates left out).", ["provider", "shortcode"])
INBOUND_HANDLED = Counter("smsgate_inbound_handled", "Inbound SMS handled, by outcome.", ["shortcode", "outcome"])
HANDLER_DURATION = Histogram(
    "smsgate_handler_duration_seconds", "Time to work out the reply to one inbound SMS.", ["shortcode", "command"]
)
SENDS = Counter("smsgate_sends", "Send attempts, by outcome (sent|retry|failed|refused).", ["provider", "outcome"])
PROVIDER_REQUEST_DURATION = Histogram(
    "smsgate_provider_request_duration_seconds", "Duration of one provider API send call.", ["provider"]
)
PROVIDER_ERRORS = Counter(
    "smsgate_provider_errors", "Provider API send errors (kind transient|permanent).", ["provider", "kind"]
)
DELIVERY_REPORTS = Counter("smsgate_delivery_reports", "Delivery reports received.", ["provider", "status"])
WEBHOOK_REFUSALS = Counter("smsgate_webhook_refusals", "Webhooks refused, by reason.", ["provider", "reason"])
REFUSALS = Counter(
    "smsgate_refusals", "Replies we refused to send (dlt_no_template|opted_out).", ["shortcode", "reason"]
)
RATE_LIMITED = Counter(
    "smsgate_rate_limited", "Inbound SMS not answered: the sender was over the limit.", ["shortcode"]
)
SUPPRESSIONS = Counter("smsgate_suppressions", "Numbers put on the suppression list, by source.", ["source"])

INBOUND_OUTCOMES = frozenset({"replied", "no_reply", "rate_limited", "provider_mismatch", "unknown_shortcode"})
SEND_OUTCOMES = frozenset({"sent", "retry", "failed", "refused"})
WEBHOOK_REFUSAL_REASONS = frozenset(
    {"forbidden", "bad_request", "too_large", "unknown_provider", "method", "unavailable"}
)
REFUSAL_REASONS = frozenset({"dlt_no_template", "opted_out"})
SUPPRESSION_SOURCES = frozenset({"sms", "provider", "admin"})
REPORT_STATUSES = frozenset(Status) | {UNKNOWN}
# Without a `transient` field: a retry is a transient failure, a final failure a permanent one.
ERROR_KINDS = {"retry": "transient", "failed": "permanent"}


class _Vocabulary:
    """The configured shortcodes and command codes, re-read at most every VOCABULARY_SECONDS."""

    def __init__(self) -> None:
        self.shortcodes_load: Callable[[], Iterable[str]] = lambda: ()
        self.commands_load: Callable[[], Iterable[str]] = lambda: ()
        self.loaded_at: float | None = None
        self.shortcodes: frozenset[str] = frozenset()
        self.commands: frozenset[str] = frozenset()

    def current(self) -> "_Vocabulary":
        now = time.monotonic()
        if self.loaded_at is None or abs(now - self.loaded_at) > VOCABULARY_SECONDS:  # abs: a clock set back
            try:
                self.shortcodes = frozenset(self.shortcodes_load())
                self.commands = frozenset(code.upper() for code in self.commands_load())
            except Exception:  # the database is away: the last lists stand, new values count as "other"
                logger.warning("metrics: could not read the configured shortcodes and codes", exc_info=True)
            self.loaded_at = now
        return self


_vocabulary = _Vocabulary()
_active_sessions: list[Callable[[], int | None]] = []


def metrics_vocabulary_set(*, shortcodes: Callable[[], Iterable[str]], commands: Callable[[], Iterable[str]]) -> None:
    """Where the configured shortcode numbers and command codes are read from (the app that owns them)."""
    _vocabulary.shortcodes_load = shortcodes
    _vocabulary.commands_load = commands
    _vocabulary.loaded_at = None


def metrics_vocabulary_forget(**_: Any) -> None:
    """Read the configured shortcodes and codes again on the next event (a signal receiver: takes any arguments)."""
    _vocabulary.loaded_at = None


def metrics_active_sessions_set(count: Callable[[], int | None]) -> None:
    """How many conversation sessions are open (None when the cache cannot tell): read at scrape time."""
    _active_sessions[:] = [count]


def provider_label(value: Any) -> str:
    return value if value in settings.SMS_PROVIDER_SLUGS else UNKNOWN


def shortcode_label(value: Any) -> str:
    return value if isinstance(value, str) and value in _vocabulary.current().shortcodes else OTHER


def command_label(value: Any) -> str:
    if not value:
        return "none"
    code = str(value).upper()
    return code if code in _vocabulary.current().commands else OTHER


def _word(value: Any, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


def _seconds(duration_ms: Any) -> float | None:
    try:
        return max(float(duration_ms), 0.0) / 1000
    except (TypeError, ValueError):
        return None


def metrics_event(name: str, fields: dict[str, Any]) -> None:
    """The delivery.events listener: one event moves the counters it concerns (see delivery.events for fields)."""
    if name == "inbound.stored":
        if not fields.get("duplicate"):
            INBOUND.labels(provider_label(fields.get("provider")), shortcode_label(fields.get("shortcode"))).inc()
    elif name == "inbound.handled":
        shortcode = shortcode_label(fields.get("shortcode"))
        outcome = _word(fields.get("outcome"), INBOUND_OUTCOMES)
        INBOUND_HANDLED.labels(shortcode, outcome).inc()
        if outcome == "rate_limited":
            RATE_LIMITED.labels(shortcode).inc()
        if (seconds := _seconds(fields.get("duration_ms"))) is not None:
            HANDLER_DURATION.labels(shortcode, command_label(fields.get("command"))).observe(seconds)
    elif name == "message.sent":
        provider = provider_label(fields.get("provider"))
        outcome = _word(fields.get("outcome"), SEND_OUTCOMES)
        SENDS.labels(provider, outcome).inc()
        if outcome in ERROR_KINDS:
            # An event that says whether the error was transient wins (a failure after the last retry is).
            transient = fields.get("transient")
            kind = ERROR_KINDS[outcome] if transient is None else ("transient" if transient else "permanent")
            PROVIDER_ERRORS.labels(provider, kind).inc()
        if outcome != "refused" and (seconds := _seconds(fields.get("duration_ms"))) is not None:
            PROVIDER_REQUEST_DURATION.labels(provider).observe(seconds)
    elif name == "message.refused":
        REFUSALS.labels(shortcode_label(fields.get("shortcode")), _word(fields.get("reason"), REFUSAL_REASONS)).inc()
    elif name == "report.recorded":
        status = fields.get("status")
        DELIVERY_REPORTS.labels(provider_label(fields.get("provider")), _word(status, REPORT_STATUSES)).inc()
    elif name == "webhook.refused":
        reason = _word(fields.get("reason"), WEBHOOK_REFUSAL_REASONS)
        WEBHOOK_REFUSALS.labels(provider_label(fields.get("provider")), reason).inc()
    elif name == "suppression.added":
        SUPPRESSIONS.labels(_word(fields.get("source"), SUPPRESSION_SOURCES)).inc()


def pending_messages(now=None) -> dict[str, tuple[int, float]]:
    """
    Per direction ("in", "out"): (rows not yet handled or handed over, age in seconds of
    the oldest). An outbound held for the promotional window is waiting by design, not
    backing up: left out until its time comes.
    """
    now = now or timezone.now()
    result = {}
    for direction in Direction:
        rows = Message.objects.filter(direction=direction, status__in=PENDING_STATUSES)
        if direction == Direction.OUTBOUND:
            rows = rows.exclude(send_after__gt=now)
        summary = rows.aggregate(oldest=Min("created_at"), count=Count("id"))
        oldest = summary["oldest"]
        result[direction.value] = (summary["count"], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
    return result


class ScrapeCollector(Collector):
    """The gauges read when /metrics is scraped; a source that fails is left out of that scrape, logged."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._pending()
        yield from self._gauge(
            "smsgate_broker_queue_depth", "Tasks waiting in the broker's task queues, all of them.", broker_backlog
        )
        if _active_sessions:
            yield from self._gauge("smsgate_active_sessions", "Conversations waiting for a reply.", _active_sessions[0])

    def _pending(self) -> Iterator[GaugeMetricFamily]:
        try:
            pending = pending_messages()
        except Exception:  # a scrape must answer even while the database does not
            logger.warning("metrics: could not count pending messages", exc_info=True)
            return
        count = GaugeMetricFamily(
            "smsgate_pending_messages", "Messages not yet handled (in) or handed over (out).", labels=["direction"]
        )
        age = GaugeMetricFamily(
            "smsgate_oldest_pending_age_seconds", "Age of the oldest pending message.", labels=["direction"]
        )
        for direction, (number, seconds) in pending.items():
            count.add_metric([direction], number)
            age.add_metric([direction], seconds)
        yield count
        yield age

    @staticmethod
    def _gauge(name: str, documentation: str, read: Callable[[], int | None]) -> Iterator[GaugeMetricFamily]:
        try:
            value = read()
        except Exception:
            logger.warning("metrics: could not read %s", name, exc_info=True)
            return
        if value is not None:
            yield GaugeMetricFamily(name, documentation, value=value)

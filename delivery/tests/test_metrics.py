"""
/metrics: what an operator's Prometheus reads, parsed from the exposition text.

Counters are process-global, so every test reads /metrics before and after and asserts
the difference.
"""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from freezegun import freeze_time
from prometheus_client.parser import text_string_to_metric_families

from commands.tests.factories import CommandFactory, ShortcodeFactory
from conftest import ROOT, FakeResponse
from conversations.sessions import Session, session_save
from conversations.tests.factories import SHORTCODE, service_shortcode
from delivery.events import event
from delivery.models import Message
from delivery.redaction import MASK, PHONE_NUMBER, redact
from delivery.statuses import Direction, Status
from delivery.tests.factories import InboundMessageFactory, OutboundMessageFactory

TOKEN = "metrics-token-5b1e9c"
PHONE = "+919876543210"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []


@pytest.fixture
def configured(db, metrics_token):
    """Shortcode 57675 with command 2 (alias BAL): the only shortcode and codes labels may name."""
    CommandFactory(shortcode=ShortcodeFactory(number="57675"), code="2", aliases=["BAL"])


def scrape(client, *, remote: str = "127.0.0.1", **headers) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, keyed by (sample name, labels)."""
    response = client.get("/metrics", REMOTE_ADDR=remote, headers={"Authorization": f"Bearer {TOKEN}", **headers})
    assert response.status_code == 200, response.content
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# Protection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"bearer {TOKEN}x", TOKEN],
    ids=["none", "wrong", "basic", "longer", "bare"],
)
def test_metrics_without_the_token_are_refused(client, db, metrics_token, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 403
    assert b"smsgate_" not in response.content


def test_metrics_with_the_token_answer_in_prometheus_format(client, db, metrics_token):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    families = {family.name for family in text_string_to_metric_families(response.content.decode())}
    # ours, the scrape-time gauges, and django-prometheus's HTTP basics
    assert {"smsgate_webhook_refusals", "smsgate_pending_messages", "django_http_requests_before_middlewares"} <= (
        families
    )


@pytest.mark.parametrize(
    "remote,forwarded,status",
    [
        ("10.1.2.3", "", 200),
        ("192.168.1.9", "", 403),
        # X-Forwarded-For is believed only from a trusted proxy
        ("192.168.1.9", "10.1.2.3", 403),
        ("172.16.0.1", "10.1.2.3", 200),
        ("172.16.0.1", "192.168.1.9", 403),
    ],
)
def test_metrics_from_an_allowed_address_need_no_token(client, db, settings, remote, forwarded, status):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    settings.TRUSTED_PROXIES = ["172.16.0.1"]
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    assert client.get("/metrics", REMOTE_ADDR=remote, headers=headers).status_code == status


@pytest.mark.parametrize("debug,status", [(False, 403), (True, 200)])
def test_metrics_with_neither_token_nor_addresses_are_open_only_with_debug(client, db, settings, debug, status):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    settings.DEBUG = debug
    assert client.get("/metrics").status_code == status


def test_scrapes_over_plain_http_are_not_redirected_to_https(client, db, metrics_token, settings):
    # given: the deploy settings with an https PUBLIC_BASE_URL (Prometheus scrapes from inside the network)
    settings.SECURE_SSL_REDIRECT = True
    # then
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/webhooks/generic/status/").status_code == 301


def test_the_metrics_token_is_masked_like_every_secret(metrics_token):
    assert redact(f"Authorization: Bearer {TOKEN}") == f"Authorization: Bearer {MASK}"


# Counters moved by events ----------------------------------------------------------------------

# event, fields, then every (sample, labels, expected change)
EVENT_CASES = [
    pytest.param(
        "inbound.stored",
        {"provider": "generic", "shortcode": "57675", "phone": PHONE, "duplicate": False},
        [("smsgate_inbound_total", {"provider": "generic", "shortcode": "57675"}, 1)],
        id="inbound",
    ),
    pytest.param(
        "inbound.stored",
        {"provider": "twilio", "shortcode": "57675", "phone": PHONE, "duplicate": True},
        [("smsgate_inbound_total", {"provider": "twilio", "shortcode": "57675"}, 0)],
        id="inbound-duplicate-not-counted",
    ),
    pytest.param(
        "inbound.stored",
        {"provider": "no-such-provider", "shortcode": "99999", "phone": PHONE, "duplicate": False},
        [("smsgate_inbound_total", {"provider": "unknown", "shortcode": "other"}, 1)],
        id="inbound-unconfigured-shortcode-is-other",
    ),
    pytest.param(
        "inbound.handled",
        {"provider": "generic", "shortcode": "57675", "command": "2", "outcome": "replied", "duration_ms": 250},
        [
            ("smsgate_inbound_handled_total", {"shortcode": "57675", "outcome": "replied"}, 1),
            ("smsgate_handler_duration_seconds_count", {"shortcode": "57675", "command": "2"}, 1),
            ("smsgate_handler_duration_seconds_sum", {"shortcode": "57675", "command": "2"}, 0.25),
            ("smsgate_handler_duration_seconds_bucket", {"shortcode": "57675", "command": "2", "le": "0.25"}, 1),
            ("smsgate_handler_duration_seconds_bucket", {"shortcode": "57675", "command": "2", "le": "0.1"}, 0),
        ],
        id="handled",
    ),
    pytest.param(
        "inbound.handled",
        {"provider": "generic", "shortcode": "57675", "command": "bal", "outcome": "replied", "duration_ms": 5},
        [("smsgate_handler_duration_seconds_count", {"shortcode": "57675", "command": "BAL"}, 1)],
        id="handled-alias",
    ),
    pytest.param(
        "inbound.handled",
        {"provider": "generic", "shortcode": "57675", "command": "HELLO", "outcome": "replied", "duration_ms": 5},
        [("smsgate_handler_duration_seconds_count", {"shortcode": "57675", "command": "other"}, 1)],
        id="handled-unconfigured-code-is-other",
    ),
    pytest.param(
        "inbound.handled",
        {"provider": "generic", "shortcode": "57675", "command": "", "outcome": "rate_limited", "duration_ms": 1},
        [
            ("smsgate_inbound_handled_total", {"shortcode": "57675", "outcome": "rate_limited"}, 1),
            ("smsgate_rate_limited_total", {"shortcode": "57675"}, 1),
            ("smsgate_handler_duration_seconds_count", {"shortcode": "57675", "command": "none"}, 1),
        ],
        id="rate-limited",
    ),
    pytest.param(
        "message.sent",
        {"provider": "plivo", "shortcode": "57675", "outcome": "sent", "duration_ms": 120, "phone": PHONE},
        [
            ("smsgate_sends_total", {"provider": "plivo", "outcome": "sent"}, 1),
            ("smsgate_provider_request_duration_seconds_count", {"provider": "plivo"}, 1),
            ("smsgate_provider_request_duration_seconds_sum", {"provider": "plivo"}, 0.12),
            ("smsgate_provider_errors_total", {"provider": "plivo", "kind": "transient"}, 0),
        ],
        id="sent",
    ),
    pytest.param(
        "message.sent",
        {"provider": "sinch", "shortcode": "57675", "outcome": "retry", "duration_ms": 2000, "error_code": "503"},
        [
            ("smsgate_sends_total", {"provider": "sinch", "outcome": "retry"}, 1),
            ("smsgate_provider_errors_total", {"provider": "sinch", "kind": "transient"}, 1),
            ("smsgate_provider_request_duration_seconds_count", {"provider": "sinch"}, 1),
        ],
        id="retry",
    ),
    pytest.param(
        "message.sent",
        {"provider": "msg91", "shortcode": "57675", "outcome": "failed", "duration_ms": 80, "error_code": "400"},
        [
            ("smsgate_sends_total", {"provider": "msg91", "outcome": "failed"}, 1),
            ("smsgate_provider_errors_total", {"provider": "msg91", "kind": "permanent"}, 1),
        ],
        id="failed",
    ),
    pytest.param(
        "message.sent",
        {"provider": "msg91", "outcome": "failed", "transient": True, "duration_ms": 80, "error_code": "503"},
        [
            ("smsgate_provider_errors_total", {"provider": "msg91", "kind": "transient"}, 1),
            ("smsgate_provider_errors_total", {"provider": "msg91", "kind": "permanent"}, 0),
        ],
        id="failed-after-the-last-retry",
    ),
    pytest.param(
        "message.sent",
        {"provider": "generic", "shortcode": "57675", "outcome": "refused", "duration_ms": None},
        [
            ("smsgate_sends_total", {"provider": "generic", "outcome": "refused"}, 1),
            ("smsgate_provider_request_duration_seconds_count", {"provider": "generic"}, 0),
        ],
        id="refused-at-send-time-calls-no-provider",
    ),
    pytest.param(
        "message.refused",
        {"provider": "generic", "shortcode": "57675", "reason": "dlt_no_template", "phone": PHONE},
        [("smsgate_refusals_total", {"shortcode": "57675", "reason": "dlt_no_template"}, 1)],
        id="dlt-refused",
    ),
    pytest.param(
        "report.recorded",
        {"provider": "twilio", "status": "delivered", "applied": True},
        [("smsgate_delivery_reports_total", {"provider": "twilio", "status": "delivered"}, 1)],
        id="report",
    ),
    pytest.param(
        "report.recorded",
        {"provider": "twilio", "status": "queued-at-carrier 42", "applied": False},
        [("smsgate_delivery_reports_total", {"provider": "twilio", "status": "other"}, 1)],
        id="report-odd-status",
    ),
    pytest.param(
        "webhook.refused",
        {"provider": "generic", "kind": "inbound", "reason": "forbidden", "status_code": 403},
        [("smsgate_webhook_refusals_total", {"provider": "generic", "reason": "forbidden"}, 1)],
        id="webhook-refused",
    ),
    pytest.param(
        "webhook.refused",
        {"provider": "../etc/passwd", "kind": "inbound", "reason": "unknown_provider", "status_code": 404},
        [("smsgate_webhook_refusals_total", {"provider": "unknown", "reason": "unknown_provider"}, 1)],
        id="webhook-unknown-provider",
    ),
    pytest.param(
        "suppression.added",
        {"shortcode": "57675", "source": "sms", "phone": PHONE},
        [("smsgate_suppressions_total", {"source": "sms"}, 1)],
        id="suppression",
    ),
]


@pytest.mark.parametrize("name,fields,changes", EVENT_CASES)
def test_an_event_moves_exactly_its_counters(client, configured, name, fields, changes):
    # given
    before = scrape(client)
    # when
    event(name, **fields)
    # then
    after = scrape(client)
    for sample, labels, expected in changes:
        moved = value(after, sample, **labels) - value(before, sample, **labels)
        assert moved == pytest.approx(expected), (sample, labels)


def test_a_shortcode_configured_after_the_labels_were_read_is_named_at_once(client, configured):
    event("inbound.stored", provider="generic", shortcode="57676", phone=PHONE, duplicate=False)
    before = scrape(client)
    # when
    ShortcodeFactory(number="57676")
    event("inbound.stored", provider="generic", shortcode="57676", phone=PHONE, duplicate=False)
    # then
    after = scrape(client)
    labels = {"provider": "generic", "shortcode": "57676"}
    assert value(after, "smsgate_inbound_total", **labels) - value(before, "smsgate_inbound_total", **labels) == 1


def test_no_label_carries_a_phone_number(client, configured):
    # given: events whose caller-supplied fields hold phone numbers where labels come from
    event("inbound.stored", provider="generic", shortcode=PHONE, phone=PHONE, duplicate=False)
    event("inbound.stored", provider=PHONE, shortcode="9876543210", phone=PHONE, duplicate=False)
    event("inbound.handled", provider="generic", shortcode=PHONE, command="9876543210", outcome=PHONE, duration_ms=3)
    event("message.refused", provider="generic", shortcode=PHONE, reason=PHONE, phone=PHONE)
    event("report.recorded", provider="generic", status=PHONE, applied=False)
    event("suppression.added", shortcode=PHONE, source=PHONE, phone=PHONE)
    # when
    samples = scrape(client)
    # then
    label_values = {value for _, labels in samples for _, value in labels}
    assert label_values, "no labels scraped"
    assert [value for value in label_values if PHONE_NUMBER.search(value)] == []


# Gauges read at scrape time --------------------------------------------------------------------


def test_pending_gauges_count_stored_rows_and_the_age_of_the_oldest(client, db, metrics_token):
    # given: an inbound waiting 2 minutes, an outbound queued 30 s ago, one sending 10 s ago
    with freeze_time(NOW - timedelta(minutes=2)):
        InboundMessageFactory(status=Status.RECEIVED)
        InboundMessageFactory(status=Status.HANDLED)
        # held for the promotional window: waiting by design, not backing up
        OutboundMessageFactory(status=Status.QUEUED, send_after=NOW + timedelta(hours=1))
        OutboundMessageFactory(status=Status.FAILED)
    with freeze_time(NOW - timedelta(seconds=30)):
        OutboundMessageFactory(status=Status.QUEUED)
    with freeze_time(NOW - timedelta(seconds=10)):
        OutboundMessageFactory(status=Status.SENDING)
    # when
    with freeze_time(NOW):
        samples = scrape(client)
    # then
    assert value(samples, "smsgate_pending_messages", direction="in") == 1
    assert value(samples, "smsgate_oldest_pending_age_seconds", direction="in") == 120
    assert value(samples, "smsgate_pending_messages", direction="out") == 2
    assert value(samples, "smsgate_oldest_pending_age_seconds", direction="out") == 30


def test_pending_gauges_are_zero_with_nothing_pending(client, db, metrics_token):
    OutboundMessageFactory(status=Status.SENT)
    samples = scrape(client)
    for direction in ("in", "out"):
        assert value(samples, "smsgate_pending_messages", direction=direction) == 0
        assert value(samples, "smsgate_oldest_pending_age_seconds", direction=direction) == 0
    # tasks run in-process here: nothing waits in a broker
    assert ("smsgate_broker_queue_depth", frozenset()) in samples
    assert value(samples, "smsgate_broker_queue_depth") == 0


@pytest.mark.services
def test_active_sessions_count_the_conversations_waiting_in_redis(client, db, metrics_token):
    # given: two subscribers in the middle of a flow
    for phone in (PHONE, "+919876500001"):
        session_save(shortcode=SHORTCODE, phone=phone, session=Session(command_id=1, code="1", step="a"), ttl=300)
    # then
    assert value(scrape(client), "smsgate_active_sessions") == 2


def test_active_sessions_are_left_out_where_the_cache_cannot_count_them(client, db, metrics_token, settings):
    # given: the local-memory cache, which cannot list its keys (also on a run that has Redis)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "metrics"}}
    assert not hasattr(cache, "iter_keys")
    session_save(shortcode=SHORTCODE, phone=PHONE, session=Session(command_id=1, code="1", step="a"), ttl=300)
    # then: no number rather than a wrong one
    assert ("smsgate_active_sessions", frozenset()) not in scrape(client)


# Several processes -----------------------------------------------------------------------------

WORKER = """
import django
django.setup()
from delivery.events import event
event("webhook.refused", provider="generic", kind="status", reason="too_large", status_code=413)
"""


def test_with_a_multiprocess_dir_every_process_counts(client, db, metrics_token, settings, tmp_path):
    # given: two worker processes (gunicorn or Celery) that each refused one webhook
    environment = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "smsgate.settings",
    }
    for _ in range(2):
        subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, env=environment, check=True, timeout=60)  # noqa: S603
    # when: this process serves /metrics from the same directory
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    samples = scrape(client)
    # then: both counted; the scrape-time gauges come from this process
    assert value(samples, "smsgate_webhook_refusals_total", provider="generic", reason="too_large") == 2
    assert ("smsgate_pending_messages", frozenset({("direction", "in")})) in samples


# Through real webhooks ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_scripted_sequence_of_webhooks_moves_the_counters_by_exactly_that(
    client, metrics_token, post_webhook, provider_server, django_capture_on_commit_callbacks
):
    # given: shortcode 57675 replying through a gateway (a local server) that accepts the send
    service_shortcode(provider="generic", provider_config={"outbound_url": f"{provider_server.url}/send"})
    provider_server.script = [FakeResponse(201, {"id": "gw-1"})]
    before = scrape(client)

    # when: an SMS "2", its retry by the aggregator, an SMS to a number we do not serve,
    # a forged webhook, and the report that the reply was delivered
    with django_capture_on_commit_callbacks(execute=True):
        inbound = {"from": PHONE, "to": SHORTCODE, "body": "2", "id": "in-1"}
        assert post_webhook("/webhooks/generic/inbound/", inbound).status_code == 200
        assert post_webhook("/webhooks/generic/inbound/", inbound).status_code == 200
        stray = {"from": PHONE, "to": "+919812345678", "body": "2", "id": "in-2"}
        assert post_webhook("/webhooks/generic/inbound/", stray).status_code == 200
    forged = post_webhook("/webhooks/generic/inbound/", {"from": PHONE, "to": SHORTCODE, "body": "3"}, sign=False)
    assert forged.status_code == 403
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    report = {"id": "gw-1", "status": "delivered"}
    assert post_webhook(f"/webhooks/generic/status/?ref={reply.uuid}", report).status_code == 200

    # then
    after = scrape(client)

    def moved(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert moved("smsgate_inbound_total", provider="generic", shortcode=SHORTCODE) == 1
    assert moved("smsgate_inbound_total", provider="generic", shortcode="other") == 1
    assert moved("smsgate_inbound_handled_total", shortcode=SHORTCODE, outcome="replied") == 1
    assert moved("smsgate_handler_duration_seconds_count", shortcode=SHORTCODE, command="2") == 1
    assert moved("smsgate_sends_total", provider="generic", outcome="sent") == 1
    assert moved("smsgate_provider_request_duration_seconds_count", provider="generic") == 1
    assert moved("smsgate_webhook_refusals_total", provider="generic", reason="forbidden") == 1
    assert moved("smsgate_delivery_reports_total", provider="generic", status="delivered") == 1
    assert moved("smsgate_provider_errors_total", provider="generic", kind="transient") == 0
    assert len(provider_server.requests) == 1
    # and no label anywhere is the caller's number or the number it texted
    label_values = {value for _, labels in after for _, value in labels}
    assert [value for value in label_values if PHONE_NUMBER.search(value)] == []

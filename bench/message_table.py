"""The message table at scale: insert rate and support queries, plain and partitioned by month.

    nice -n 19 .venv/bin/python bench/message_table.py [--rows 50000000] [--phases all] [--keep]

Builds a scratch database `smsgate_scale` on the local Postgres (dropped first), runs the
project's migrations there, fills `delivery_message` with `--rows` rows of a year's
traffic by set-based SQL, and measures what the app does to that table: the webhook's
single-row insert (at 0 rows and at full size), a phone's conversation, the admin message
list with its filters, a delivery report's lookup, a message fetched by id, the inbound
and outbox sweeps and the retention purge. Then it builds a copy partitioned by month on
created_at, swaps it in under the same name and measures the same again, plus dropping
a month's partition. The SQL measured is the app's own: each operation calls the
project's code and its queries are captured and run again under EXPLAIN (ANALYZE, BUFFERS);
writes are rolled back. Every figure is the median of --runs timed runs after one first
(cold) run; an operation whose first run takes over SLOW_SECONDS gets two timed runs. The
insert is timed twice: through the ORM as message_receive does it, and as bare SQL from
pgbench in interleaved rounds over an empty, the plain and the partitioned table. Results
go to bench/results/message_table.json; the scratch database is dropped at the end unless
--keep.

Kind to a shared machine: every Postgres backend it uses is reniced to 19, and it stops
when free disk space falls under --min-free-gb.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "smsgate_scale"
SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
DB_URL = f"{SERVER_URL}/{DB_NAME}"
RESULTS = ROOT / "bench" / "results" / "message_table.json"
PHASES = (
    "create",
    "insert-empty",
    "fill",
    "measure",
    "partition",
    "measure-partitioned",
    "insert-pgbench",
    "sizes",
    "drop",
)

sys.path.insert(0, str(ROOT))
os.environ.update(
    DJANGO_SETTINGS_MODULE="smsgate.settings",
    DATABASE_URL=DB_URL,
    DJANGO_SECRET_KEY="bench-secret-key",
    DJANGO_DEBUG="0",
    DJANGO_ALLOWED_HOSTS="testserver",
    LOG_LEVEL="WARNING",
)
# The bench owns only its scratch database: no shared cache or broker.
for name in ("REDIS_URL", "CELERY_BROKER_URL"):
    os.environ.pop(name, None)

import django  # noqa: E402
import psycopg  # noqa: E402

django.setup()

from django.contrib import admin  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from console.conversation import conversation_get  # noqa: E402
from conversations.sweeps import _inbound_due  # noqa: E402
from delivery.models import Message  # noqa: E402
from delivery.providers.base import StatusUpdate  # noqa: E402
from delivery.reports import delivery_report_record  # noqa: E402
from delivery.retention import message_purge  # noqa: E402
from delivery.statuses import Direction, Status  # noqa: E402
from delivery.sweeps import _outbox_due  # noqa: E402

# Shortcodes with their provider and share of traffic (cumulative percent).
SHORTCODES = (("57675", "msg91", 60), ("56767", "plivo", 90), ("51234", "twilio", 100))
PHONES = 1_000_000
SLOW_SECONDS = 5
INBOUND_TEXT = (
    "Hi, my card was blocked at the ATM yesterday evening and I need it working again before my trip next "
    "week, please call me back on this number or send the form to fill, thank you very much for your help"
)
OUTBOUND_TEXT = (
    "Dear customer, your account balance is Rs 4,512.30 as on 12-Mar. For a mini statement reply 2, for "
    "offers reply 4, for support reply 3. Thank you for banking with us. T&C apply, see the app for details"
)


def log(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", flush=True)


def backend_renice(cursor) -> None:
    """Lower the priority of the Postgres backend behind `cursor` (the machine is shared)."""
    cursor.execute("SELECT pg_backend_pid()")
    pid = cursor.fetchone()[0]
    try:
        os.setpriority(os.PRIO_PROCESS, pid, 19)
    except (PermissionError, ProcessLookupError) as error:
        log(f"could not renice backend {pid}: {error}")


def raw_connect(dbname: str = DB_NAME) -> psycopg.Connection:
    conn = psycopg.connect(f"{SERVER_URL}/{dbname}", autocommit=True)
    backend_renice(conn.cursor())
    return conn


def django_connect() -> None:
    connection.ensure_connection()
    with connection.cursor() as cursor:
        backend_renice(cursor)


def free_gb() -> float:
    return shutil.disk_usage("/work").free / 1e9


def disk_check(minimum: float) -> None:
    if (free := free_gb()) < minimum:
        raise SystemExit(f"stopped: {free:.1f} GB free on /work, under {minimum} GB")


def median_ms(timings: list[float]) -> float:
    return round(statistics.median(timings) * 1000, 2)


# Phase: create --------------------------------------------------------------------------


def database_create() -> None:
    connection.close()
    with raw_connect("postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run(
        ["nice", "-n", "19", sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        check=True,
        env=os.environ,
    )
    log(f"{DB_NAME} created and migrated")


# Phase: the webhook's insert --------------------------------------------------------------


def inbound_insert_rate(*, runs: int, rows_per_run: int) -> dict:
    """
    What message_receive does per webhook: one INSERT ... RETURNING id in its own
    transaction (synchronous commit), through the ORM. A random phone among the
    existing ones and a random provider id, so every index takes a random key.
    """
    django_connect()
    rates, latencies = [], []
    for run in range(runs + 1):
        started = time.perf_counter()
        for n in range(rows_per_run):
            at = time.perf_counter()
            with transaction.atomic():
                Message.objects.create(
                    direction=Direction.INBOUND,
                    status=Status.RECEIVED,
                    shortcode="57675",
                    phone=f"+919{(n * 7919) % PHONES:09d}",
                    body=INBOUND_TEXT[: 20 + n % 141],
                    encoding=Message.Encoding.GSM7,
                    segments=1,
                    provider="msg91",
                    provider_message_id=uuid.uuid4().hex[:24],
                    raw_payload={"from": "+919000000000", "to": "57675", "text": "2", "run": run},
                )
            latencies.append(time.perf_counter() - at)
        if run:  # the first run warms up
            rates.append(rows_per_run / (time.perf_counter() - started))
    latencies.sort()
    return {
        "rows_per_run": rows_per_run,
        "runs": runs,
        "rate_per_s_median": round(statistics.median(rates)),
        "rate_per_s_runs": [round(rate) for rate in rates],
        "latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 3),
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
    }


def bench_rows_delete() -> None:
    """The insert test's rows go before the fill (they would clash with its ids)."""
    with raw_connect() as conn:
        conn.execute("TRUNCATE delivery_message RESTART IDENTITY CASCADE")


# Phase: fill ------------------------------------------------------------------------------


def secondary_keys(conn, table: str) -> list[str]:
    """The DDL re-creating every index and constraint of `table` but its primary key and checks."""
    statements = [
        f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
        for name, definition in conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY contype DESC, conname",
            [table],
        )
    ]
    statements[0:0] = [
        definition
        for (definition,) in conn.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
            "ORDER BY i.indexrelid",
            [table],
        )
    ]
    return statements


def secondary_keys_drop(conn, table: str) -> None:
    for (name,) in conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('u', 'f')", [table]
    ).fetchall():
        conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for (name,) in conn.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
        [table],
    ).fetchall():
        conn.execute(f"DROP INDEX {name}")


# One pair per k: an inbound SMS (id 2k+1) and the reply that answers it (id 2k+2). The
# year runs from %(start)s in steps of %(step)s seconds, ids in time order. Phones follow
# a skewed law (u squared): a few numbers write very often, most a few times a year.
# Pending statuses occur only in the newest %(tail)s pairs (what the sweeps see).
FILL_SQL = """
INSERT INTO delivery_message (
    id, uuid, direction, shortcode, phone, body, status, provider, provider_message_id, provider_options,
    in_reply_to_id, command, error_code, error_message, raw_payload, reference, callback_url, encoding,
    segments, dlt_template_id, dlt_entity_id, dlt_category, attempts, next_attempt_at, send_after,
    created_at, updated_at, handled_at, sent_at, delivered_at)
SELECT r.*
FROM (
    SELECT k,
           %(start)s::timestamptz + make_interval(secs => k * %(step)s) AS t,
           '+91' || (9000000000 + floor(%(phones)s * power((hashint8extended(k, 1) & 2147483647)::float8
               / 2147483648, 2)))::bigint AS phone,
           (hashint8extended(k, 2) & 2147483647) %% 100 AS pick,
           ((hashint8extended(k, 3) & 2147483647) %% 1000000)::float8 / 1e6 AS u_in,
           ((hashint8extended(k, 4) & 2147483647) %% 1000000)::float8 / 1e6 AS u_out,
           (hashint8extended(k, 5) & 2147483647) AS h,
           k >= %(pairs)s - %(tail)s AS newest
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS k
    OFFSET 0  -- computed once per pair, not inlined into every column below
) p
CROSS JOIN LATERAL (
    SELECT CASE WHEN p.pick < 60 THEN '57675' WHEN p.pick < 90 THEN '56767' ELSE '51234' END AS shortcode,
           CASE WHEN p.pick < 60 THEN 'msg91' WHEN p.pick < 90 THEN 'plivo' ELSE 'twilio' END AS provider,
           substr(%(inbound_text)s, 1 + (p.h %% 50)::int, 20 + (p.h %% 141)::int) AS body_in,
           substr(%(outbound_text)s, 1 + (p.h %% 37)::int, 20 + ((p.h / 141) %% 141)::int) AS body_out,
           CASE WHEN p.newest AND p.u_in < 0.1 THEN 'received'
                WHEN p.u_in < 0.005 THEN 'rate_limited' ELSE 'handled' END AS status_in,
           CASE WHEN p.newest AND p.u_out < 0.2 THEN 'queued'
                WHEN p.newest AND p.u_out < 0.22 THEN 'sending'
                WHEN p.u_out < 0.005 THEN 'refused'
                WHEN p.u_out < 0.015 THEN 'failed'
                WHEN p.u_out < 0.030 THEN 'undelivered'
                WHEN p.u_out < 0.033 THEN 'rejected'
                WHEN p.u_out < 0.053 THEN 'sent'
                ELSE 'delivered' END AS status_out
    OFFSET 0
) s
CROSS JOIN LATERAL (VALUES
    (2 * p.k + 1, gen_random_uuid(), 'in', s.shortcode, p.phone, s.body_in, s.status_in, s.provider,
     CASE s.provider WHEN 'msg91' THEN substr(md5('i' || p.k), 1, 24)
                     WHEN 'plivo' THEN md5('i' || p.k)::uuid::text ELSE 'SM' || md5('i' || p.k) END,
     '{}'::jsonb, NULL::bigint,
     CASE WHEN s.status_in = 'handled' THEN (ARRAY['1', '2', '3', '4', 'BAL'])[1 + (p.h %% 5)::int] ELSE '' END,
     '', '',
     jsonb_build_object('from', p.phone, 'to', s.shortcode, 'text', s.body_in, 'id', md5('i' || p.k)),
     '', '', 'gsm7', 1, '', '', '', 0, NULL::timestamptz, NULL::timestamptz,
     p.t, p.t + interval '1 second',
     CASE WHEN s.status_in = 'handled' THEN p.t + interval '1 second' END, NULL::timestamptz, NULL::timestamptz),
    (2 * p.k + 2, gen_random_uuid(), 'out', s.shortcode, p.phone, s.body_out, s.status_out, s.provider,
     CASE WHEN s.status_out IN ('queued', 'sending', 'refused', 'failed') THEN NULL
          WHEN s.provider = 'msg91' THEN substr(md5('o' || p.k), 1, 24)
          WHEN s.provider = 'plivo' THEN md5('o' || p.k)::uuid::text ELSE 'SM' || md5('o' || p.k) END,
     '{}'::jsonb, 2 * p.k + 1, '',
     CASE s.status_out WHEN 'refused' THEN 'opted_out' WHEN 'failed' THEN 'provider_error'
                       WHEN 'undelivered' THEN '30003' WHEN 'rejected' THEN '30007' ELSE '' END,
     CASE s.status_out WHEN 'refused' THEN 'the number opted out' WHEN 'failed' THEN 'HTTP 503 from provider'
                       WHEN 'undelivered' THEN 'Unreachable destination handset'
                       WHEN 'rejected' THEN 'Carrier violation'
                       ELSE '' END,
     '{}'::jsonb,
     CASE WHEN p.h %% 20 = 0 THEN 'ref-' || p.k ELSE '' END, '', 'gsm7', 1,
     '1107' || lpad((p.h %% 50)::text, 15, '0'), '1101000000000012345', 'service-implicit',
     CASE s.status_out WHEN 'queued' THEN 0 WHEN 'refused' THEN 0 WHEN 'failed' THEN 5 ELSE 1 END,
     NULL::timestamptz, NULL::timestamptz,
     p.t + make_interval(secs => 1 + p.h %% 3), p.t + make_interval(secs => 4 + p.h %% 8), NULL::timestamptz,
     CASE WHEN s.status_out IN ('sent', 'delivered', 'undelivered', 'rejected')
          THEN p.t + make_interval(secs => 2 + p.h %% 3) END,
     CASE WHEN s.status_out = 'delivered' THEN p.t + make_interval(secs => 4 + p.h %% 8) END)
) AS r
"""


def table_fill(*, rows: int, chunk: int, min_free_gb: float) -> dict:
    """
    Fill delivery_message with `rows` rows (a multiple of two) by set-based SQL in chunks:
    secondary indexes and constraints are dropped first and built again after, as a bulk
    load does; then VACUUM ANALYZE, as autovacuum would leave an old table.
    """
    pairs = rows // 2
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=365)
    step = 365 * 86400 / pairs
    result = {"rows": pairs * 2, "start": start.isoformat(), "end": end.isoformat()}
    with raw_connect() as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 0")
        keys = secondary_keys(conn, "delivery_message")
        secondary_keys_drop(conn, "delivery_message")
        started = time.perf_counter()
        for lo in range(0, pairs, chunk // 2):
            disk_check(min_free_gb)
            hi = min(pairs, lo + chunk // 2)
            conn.execute(
                FILL_SQL,
                {
                    "start": start,
                    "step": step,
                    "phones": PHONES,
                    "pairs": pairs,
                    "tail": max(1, pairs // 10_000),
                    "lo": lo,
                    "hi": hi,
                    "inbound_text": INBOUND_TEXT,
                    "outbound_text": OUTBOUND_TEXT,
                },
            )
            elapsed = time.perf_counter() - started
            log(f"filled {hi * 2:,} rows, {hi * 2 / elapsed:,.0f} rows/s, {free_gb():.1f} GB free")
        result["load_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        for statement in keys:
            at = time.perf_counter()
            conn.execute(statement)
            log(f"{time.perf_counter() - at:6.1f} s  {statement[:110]}")
        result["indexes_s"] = round(time.perf_counter() - started, 1)
        conn.execute("SELECT setval(pg_get_serial_sequence('delivery_message', 'id'), %s)", [pairs * 2])
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) delivery_message")
        result["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
    result["rows_per_s_load"] = round(result["rows"] / result["load_s"])
    result["rows_per_s_with_indexes"] = round(result["rows"] / (result["load_s"] + result["indexes_s"]))
    log(f"fill: {result}")
    return result


def table_sizes(table: str = "delivery_message") -> dict:
    """Heap (with TOAST) and each index, in MB; a partitioned table's are summed over its partitions."""
    with raw_connect() as conn:
        # pg_partition_tree lists nothing for a plain table: then the table is its own leaf.
        leaves = "SELECT relid FROM pg_partition_tree(%(t)s::regclass) WHERE isleaf UNION SELECT %(t)s::regclass"
        heap, rows = conn.execute(
            f"SELECT sum(pg_table_size(c.oid)), sum(greatest(c.reltuples, 0))::bigint FROM pg_class c "
            f"WHERE c.oid IN ({leaves}) AND c.relkind = 'r'",
            {"t": table},
        ).fetchone()
        indexes = conn.execute(
            "SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid) + coalesce((SELECT "
            "sum(pg_relation_size(t.relid)) FROM pg_partition_tree(i.indexrelid) t WHERE t.isleaf), 0) "
            "FROM pg_index i WHERE i.indrelid = %(t)s::regclass ORDER BY 2 DESC",
            {"t": table},
        ).fetchall()
    mb = 1024 * 1024
    return {
        "rows_estimated": rows,
        "heap_mb": round(heap / mb),
        "indexes_mb": {name: round(size / mb) for name, size in indexes},
        "total_mb": round((heap + sum(size for _, size in indexes)) / mb),
    }


# Phase: measure ---------------------------------------------------------------------------


def rolled_back(operation):
    """Run `operation` in a transaction that is rolled back, its deferred FK checks made immediate."""

    def run():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            result = operation()
            transaction.set_rollback(True)
        return result

    return run


def query_explain(sql: str) -> dict:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            plan = [line for (line,) in cursor.fetchall()]
        transaction.set_rollback(True)
    execution = next((line for line in plan if line.startswith("Execution Time")), "")
    return {"sql": sql, "plan": plan, "execution_ms": float(execution.split()[2]) if execution else None}


def operation_measure(name: str, operation, *, runs: int, explain: bool = True) -> dict:
    """
    One cold run with its queries captured, each query on delivery_message run again
    under EXPLAIN (ANALYZE, BUFFERS), then `runs` timed runs: the median is the figure.
    """
    with CaptureQueriesContext(connection) as captured:
        at = time.perf_counter()
        outcome = operation()
        first = time.perf_counter() - at
    timings = []
    # An operation that scans the table gets fewer runs: the machine is shared.
    for _ in range(runs if first < SLOW_SECONDS else min(runs, 2)):
        at = time.perf_counter()
        operation()
        timings.append(time.perf_counter() - at)
    # Each shape once (a purge repeats its batch's queries with other ids).
    shapes = {}
    for query in captured.captured_queries:
        if "delivery_message" in query["sql"]:
            shapes.setdefault(re.sub(r"\d+", "N", query["sql"]), query["sql"])
    explained = [query_explain(sql) for sql in shapes.values()] if explain else []
    result = {
        "name": name,
        "first_ms": round(first * 1000, 2),
        "median_ms": median_ms(timings),
        "runs_ms": [round(t * 1000, 2) for t in timings],
        "queries": len(captured.captured_queries),
        "outcome": outcome if isinstance(outcome, (int, str, dict)) else len(outcome or ()),
        "explained": explained,
    }
    log(f"{name:<40} first {result['first_ms']:>9} ms  median {result['median_ms']:>9} ms  {result['outcome']}")
    return result


def samples() -> dict:
    """Rows the operations look for: a typical phone, the busiest one, a report's message, an id."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id), min(created_at) FROM delivery_message")
        top, oldest = cursor.fetchone()
        cursor.execute(
            "SELECT phone FROM delivery_message WHERE id BETWEEN %s AND %s GROUP BY phone ORDER BY count(*) DESC "
            "LIMIT 1",
            [top - 200_000, top],
        )
        busiest = cursor.fetchone()[0]
        # A phone near the median activity: the law puts it at a quarter of the number range.
        typical = f"+91{9000000000 + PHONES // 4}"
        cursor.execute(
            "SELECT id, provider, provider_message_id, uuid FROM delivery_message "
            "WHERE id BETWEEN %s AND %s AND direction = 'out' AND status = 'sent' LIMIT 1",
            [top // 2, top],
        )
        report_id, provider, provider_message_id, reference = cursor.fetchone()
    return {
        "busiest_phone": busiest,
        "typical_phone": typical,
        "report_provider": provider,
        "report_provider_message_id": provider_message_id,
        "report_reference": str(reference),
        "middle_id": report_id,
        "oldest": oldest,
    }


def admin_list(params: dict):
    """The admin message list's first page: filter choices, the bounded count, the page's rows."""
    request = RequestFactory().get("/admin/delivery/message/", params)
    request.user = get_user_model().objects.filter(is_superuser=True).first()
    changelist = admin.site._registry[Message].get_changelist_instance(request)
    return {"rows": len(list(changelist.result_list)), "count": changelist.result_count}


def support_operations(sample: dict) -> list:
    now = datetime.now(UTC)
    get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True, "email": "bench@example.com"}
    )
    report = StatusUpdate(
        status=Status.DELIVERED,
        provider_status="DELIVRD",
        provider_message_id=sample["report_provider_message_id"],
        at=now,
    )
    report_by_ref = StatusUpdate(
        status=Status.DELIVERED, provider_status="DELIVRD", reference=sample["report_reference"]
    )
    return [
        ("conversation, typical phone", lambda: len(conversation_get(sample["typical_phone"]).entries)),
        ("conversation, busiest phone", lambda: len(conversation_get(sample["busiest_phone"]).entries)),
        ("admin list, no filter", lambda: admin_list({})),
        ("admin list, status=failed", lambda: admin_list({"status": "failed"})),
        ("admin list, status=delivered", lambda: admin_list({"status": "delivered"})),
        ("admin list, direction=in", lambda: admin_list({"direction": "in"})),
        ("admin list, shortcode=51234", lambda: admin_list({"shortcode": "51234"})),
        ("admin list, provider=plivo", lambda: admin_list({"provider": "plivo"})),
        ("admin list, status=failed&provider=twilio", lambda: admin_list({"status": "failed", "provider": "twilio"})),
        ("admin list, search a phone", lambda: admin_list({"q": sample["typical_phone"]})),
        (
            "delivery report by provider id",
            rolled_back(lambda: delivery_report_record(provider=sample["report_provider"], update=report).applied),
        ),
        (
            "delivery report by our ref (uuid)",
            rolled_back(
                lambda: delivery_report_record(provider=sample["report_provider"], update=report_by_ref).applied
            ),
        ),
        ("message by id (tasks)", lambda: Message.objects.get(id=sample["middle_id"]).id),
        ("inbound sweep select", rolled_back(lambda: len(_inbound_due(now, 1000).ids))),
        ("outbox sweep select", rolled_back(lambda: len(_outbox_due(now, 1000).ids))),
        (
            "retention purge, one day",
            rolled_back(lambda: message_purge(now=sample["oldest"] + timedelta(days=181))),
        ),
    ]


def table_measure(*, runs: int, inserts: int) -> dict:
    django_connect()
    sample = samples()
    log(f"samples: {sample}")
    result = {
        "sizes": table_sizes(),
        "operations": [operation_measure(name, op, runs=runs) for name, op in support_operations(sample)],
    }
    before = Message.objects.order_by("-id").values_list("id", flat=True).first()
    result["insert"] = inbound_insert_rate(runs=runs, rows_per_run=inserts // runs)
    log(f"insert at full size: {result['insert']}")
    # Out again, so the next measurements see the same rows.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM delivery_message WHERE id > %s", [before])
    return result


# Phase: partition -------------------------------------------------------------------------


def month_starts(first: datetime, last: datetime) -> list[datetime]:
    month = first.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = []
    while month <= last:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months + [month]


def table_partition(*, min_free_gb: float) -> dict:
    """
    Copy delivery_message into a table partitioned by month on created_at, primary key
    (id, created_at), the same indexes (none unique but the key: a unique index on a
    partitioned table must hold the partition key), then swap names so the app reads it.
    The plain table stays as delivery_message_plain; the foreign keys of other tables
    still point there.
    """
    plain_mb = table_sizes()["total_mb"]
    if free_gb() - plain_mb / 1024 * 1.1 < min_free_gb:
        raise SystemExit(f"not enough disk for the partitioned copy ({plain_mb} MB, {free_gb():.1f} GB free)")
    result = {}
    with raw_connect() as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 0")
        first, last = conn.execute("SELECT min(created_at), max(created_at) FROM delivery_message").fetchone()
        months = month_starts(first, last + timedelta(days=31))
        conn.execute(
            "CREATE TABLE delivery_message_part (LIKE delivery_message INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
            "PARTITION BY RANGE (created_at)"
        )
        conn.execute("CREATE SEQUENCE delivery_message_part_id_seq OWNED BY delivery_message_part.id")
        conn.execute("ALTER TABLE delivery_message_part ALTER id SET DEFAULT nextval('delivery_message_part_id_seq')")
        for lower, upper in zip(months, months[1:], strict=False):
            conn.execute(
                f"CREATE TABLE delivery_message_{lower:%Y_%m} PARTITION OF delivery_message_part "
                f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
            )
        result["partitions"] = len(months) - 1
        started = time.perf_counter()
        conn.execute("INSERT INTO delivery_message_part SELECT * FROM delivery_message")
        result["copy_s"] = round(time.perf_counter() - started, 1)
        log(f"copied in {result['copy_s']} s, {free_gb():.1f} GB free")
        disk_check(min_free_gb)
        started = time.perf_counter()
        for statement in (
            "ALTER TABLE delivery_message_part ADD PRIMARY KEY (id, created_at)",
            "CREATE INDEX part_uuid ON delivery_message_part (uuid)",
            "CREATE INDEX part_provider_id ON delivery_message_part (provider, direction, provider_message_id) "
            "WHERE provider_message_id IS NOT NULL",
            "CREATE INDEX part_created ON delivery_message_part (created_at)",
            "CREATE INDEX part_phone_created ON delivery_message_part (phone, created_at DESC)",
            "CREATE INDEX part_reference ON delivery_message_part (reference) WHERE NOT (reference = '')",
            "CREATE INDEX part_pending ON delivery_message_part (status, created_at) "
            "WHERE status IN ('received', 'queued', 'sending')",
            "CREATE INDEX part_in_reply_to ON delivery_message_part (in_reply_to_id)",
        ):
            at = time.perf_counter()
            conn.execute(statement)
            log(f"{time.perf_counter() - at:6.1f} s  {statement[:110]}")
        result["indexes_s"] = round(time.perf_counter() - started, 1)
        conn.execute("SELECT setval('delivery_message_part_id_seq', (SELECT max(id) FROM delivery_message))")
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) delivery_message_part")
        result["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
        conn.execute("ALTER TABLE delivery_message RENAME TO delivery_message_plain")
        conn.execute("ALTER TABLE delivery_message_part RENAME TO delivery_message")
    log(f"partitioned: {result}")
    return result


def month_delete_plain(month: datetime) -> dict:
    """DELETE of one month from the plain table (rolled back; FK checks run at once): one run."""
    upper = (month + timedelta(days=32)).replace(day=1)
    with raw_connect() as conn, conn.transaction(force_rollback=True):
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        started = time.perf_counter()
        deleted = conn.execute(
            "DELETE FROM delivery_message_plain WHERE created_at >= %s AND created_at < %s", [month, upper]
        ).rowcount
        elapsed = time.perf_counter() - started
    return {"month": f"{month:%Y-%m}", "rows": deleted, "seconds": round(elapsed, 1)}


def partitions_drop(count: int) -> dict:
    """DETACH ... CONCURRENTLY and DROP of the oldest whole months, one at a time: the partitioned purge."""
    timings, rows = [], []
    with raw_connect() as conn:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'delivery_message'::regclass ORDER BY c.relname"
            )
        ]
        for name in names[1 : 1 + count]:  # the first month is partly filled
            rows.append(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
            started = time.perf_counter()
            conn.execute(f"ALTER TABLE delivery_message DETACH PARTITION {name} CONCURRENTLY")
            conn.execute(f"DROP TABLE {name}")
            timings.append(time.perf_counter() - started)
            log(f"dropped {name} ({rows[-1]:,} rows) in {timings[-1] * 1000:.0f} ms")
    return {"rows": rows, "median_ms": median_ms(timings), "runs_ms": [round(t * 1000, 1) for t in timings]}


PGBENCH_INSERT = """\\set n random(0, 999999)
INSERT INTO {table} (uuid, direction, shortcode, phone, body, status, provider, provider_message_id,
  provider_options, command, error_code, error_message, raw_payload, reference, callback_url, encoding, segments,
  dlt_template_id, dlt_entity_id, dlt_category, attempts, created_at, updated_at)
VALUES (gen_random_uuid(), 'in', '57675', '+91' || (9000000000 + :n), 'Please call me back about my card',
  'received', 'msg91', substr(md5(random()::text), 1, 24), '{{}}', '', '', '',
  '{{"from": "+919000000000", "to": "57675", "text": "2"}}', '', '', 'gsm7', 1, '', '', '', 0, now(), now());
"""


def insert_pgbench(*, seconds: int, rounds: int) -> dict:
    """
    The webhook's INSERT alone, one row per transaction, from pgbench (one client): an
    empty table with the same indexes, the plain table and the partitioned one, in
    interleaved rounds so that the shared machine's load falls on all three alike.
    """
    tables = {"empty": "delivery_message_empty", "plain": "delivery_message_plain", "partitioned": "delivery_message"}
    with raw_connect() as conn:
        conn.execute("DROP TABLE IF EXISTS delivery_message_empty")
        conn.execute("CREATE TABLE delivery_message_empty (LIKE delivery_message_plain INCLUDING ALL)")
    rates: dict[str, list[float]] = {label: [] for label in tables}
    latencies: dict[str, list[float]] = {label: [] for label in tables}
    script = Path(f"/tmp/message_table_{os.getpid()}.sql")
    for _ in range(rounds):
        for label, table in tables.items():
            script.write_text(PGBENCH_INSERT.format(table=table))
            command = ["nice", "-n", "19", "pgbench", "-n", "-c", "1", "-T", str(seconds), "-f", str(script), DB_URL]
            bench = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(0.5)
            with raw_connect() as conn:
                for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' AND datname = %s", [DB_NAME]
                ):
                    os.setpriority(os.PRIO_PROCESS, pid, 19)
            output = bench.communicate()[0]
            tps = re.search(r"tps = ([\d.]+)", output)
            latency = re.search(r"latency average = ([\d.]+) ms", output)
            if tps is None or latency is None:
                raise SystemExit(f"pgbench failed: {output}")
            rates[label].append(float(tps.group(1)))
            latencies[label].append(float(latency.group(1)))
            log(f"pgbench insert {label:<12} {rates[label][-1]:8.0f} rows/s  {latencies[label][-1]:.3f} ms")
    script.unlink()
    with raw_connect() as conn:
        conn.execute("DROP TABLE delivery_message_empty")
    return {
        label: {
            "rate_per_s_median": round(statistics.median(rates[label])),
            "rate_per_s_runs": [round(rate) for rate in rates[label]],
            "latency_ms_median": round(statistics.median(latencies[label]), 3),
            "seconds_per_run": seconds,
        }
        for label in tables
    }


def database_drop() -> None:
    connection.close()
    with raw_connect("postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    log(f"{DB_NAME} dropped")


def results_save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--chunk", type=int, default=1_000_000, help="rows per INSERT ... SELECT")
    parser.add_argument("--inserts", type=int, default=20_000, help="single-row inserts timed, over --runs runs")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--months-dropped", type=int, default=3)
    parser.add_argument("--pgbench-seconds", type=int, default=10, help="per pgbench insert run")
    parser.add_argument("--phases", default="all", help=f"comma-separated, among: {', '.join(PHASES)}")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--min-free-gb", type=float, default=15)
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON written (read back by later phases)")
    args = parser.parse_args()
    results_path = args.results.resolve()
    phases = PHASES if args.phases == "all" else tuple(args.phases.split(","))
    if args.keep:
        phases = tuple(phase for phase in phases if phase != "drop")
    results = json.loads(results_path.read_text()) if results_path.exists() and "create" not in phases else {}
    results.setdefault("machine", {"cores": os.cpu_count(), "postgres": None, "date": f"{datetime.now():%Y-%m-%d}"})
    if "create" in phases:
        database_create()
        with raw_connect() as conn:
            results["machine"]["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
            results["machine"]["settings"] = dict(
                conn.execute(
                    "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                    "('shared_buffers', 'work_mem', 'effective_cache_size', 'synchronous_commit', "
                    "'max_parallel_workers_per_gather', 'random_page_cost')"
                ).fetchall()
            )
    if "insert-empty" in phases:
        results["insert_empty"] = inbound_insert_rate(runs=args.runs, rows_per_run=args.inserts // args.runs)
        log(f"insert at 0 rows: {results['insert_empty']}")
        connection.close()
        bench_rows_delete()
        results_save(results, results_path)
    if "fill" in phases:
        results["fill"] = table_fill(rows=args.rows, chunk=args.chunk, min_free_gb=args.min_free_gb)
        results_save(results, results_path)
    if "measure" in phases:
        results["plain"] = table_measure(runs=args.runs, inserts=args.inserts)
        results_save(results, results_path)
    if "partition" in phases:
        results["partition"] = table_partition(min_free_gb=args.min_free_gb)
        with raw_connect() as conn:
            first = conn.execute("SELECT min(created_at) FROM delivery_message_plain").fetchone()[0]
        results["month_delete_plain"] = month_delete_plain(month_starts(first, first)[1])
        log(f"month DELETE on the plain table: {results['month_delete_plain']}")
        results_save(results, results_path)
    if "measure-partitioned" in phases:
        connection.close()
        results["partitioned"] = table_measure(runs=args.runs, inserts=args.inserts)
        results["partitioned"]["drop_month"] = partitions_drop(args.months_dropped)
        results_save(results, results_path)
    if "insert-pgbench" in phases:
        results["insert_pgbench"] = insert_pgbench(seconds=args.pgbench_seconds, rounds=args.runs)
        results_save(results, results_path)
    if "sizes" in phases:
        # After the swap: the plain table under its new name, the partitioned one under the app's.
        with raw_connect() as conn:
            names = [
                name
                for name in ("delivery_message_plain", "delivery_message")
                if conn.execute("SELECT to_regclass(%s)", [name]).fetchone()[0]
            ]
        results["sizes"] = {name: table_sizes(name) for name in names}
        log(f"sizes: {results['sizes']}")
        results_save(results, results_path)
    if "drop" in phases:
        database_drop()
    log(f"results in {results_path}")


if __name__ == "__main__":
    main()

"""What the worker spends on one inbound SMS: handling it and delivering its reply.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smsgate_bench REDIS_URL=redis://127.0.0.1:6379/6 \
    CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/bench \
    .venv/bin/python bench/worker_cost.py [--messages 1000] [--batch 20] [--profile]

Set up as bench/peers/smsgate.sh sets up the whole-loop peer: shortcode 57675 on the
generic provider, its outbound_url a local sink (bench/sink.py, in its own process so its
CPU is not counted), DLT off, no inbound limit, 10,000 messages/s. N inbound SMS "2" (the
demo balance, each from its own phone) are stored first through message_receive; then
they are handled --batch at a time (inbound_batch_handle, the body of the
handle_inbound_batch task the dispatcher queues; --batch 1 is one SMS a task) and every
deliver task that handling published is run (message_deliver, the body of the deliver task).
The broker (any: RabbitMQ or Redis) takes what is published and nothing consumes it (its
queues are emptied at the start and the end); without one the tasks would run at once,
inside message_receive, and nothing would be left to time.

Three passes over separate messages: time (time.process_time(), the whole process's CPU,
and the wall clock), count (SQL statements by CaptureQueriesContext, BEGIN and COMMIT
included; transactions as commits of atomic blocks plus statements run outside any; Redis
round trips by wrapping redis-py's command and pipeline calls; broker publishes), and with
--profile a pyinstrument profile of the timed pass, written to var/worker-cost-profile.*.
At the end every message must have been handled once and answered once, each reply sent
once to the sink: none lost, none doubled.
Log lines are written to var/worker-cost.log, formatted as in production.
"""

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsgate.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-secret-key")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1")
os.environ.setdefault("PUBLIC_BASE_URL", "http://127.0.0.1:8100")

SHORTCODE = "57675"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SINK_PORT = free_port()
SINK_OUT = ROOT / "var" / f"worker-cost-sink-{SINK_PORT}.jsonl"
os.environ.setdefault("GATEWAY_ALLOWED_ORIGINS", f"http://127.0.0.1:{SINK_PORT}")

import django  # noqa: E402

django.setup()

import logging  # noqa: E402

import redis  # noqa: E402
from celery import current_app  # noqa: E402
from celery.signals import before_task_publish  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from commands.models import Shortcode  # noqa: E402
from commands.services import registry_changed  # noqa: E402
from conversations.handling import inbound_batch_handle  # noqa: E402
from conversations.receiving import message_receive  # noqa: E402
from delivery.deliver import message_deliver  # noqa: E402
from delivery.models import Message  # noqa: E402
from delivery.outbound import DELIVER_TASK  # noqa: E402
from delivery.providers.base import InboundSMS  # noqa: E402
from delivery.statuses import Direction, Status  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000, help="timed messages")
    parser.add_argument("--counted", type=int, default=200, help="messages whose statements are counted")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--batch", type=int, default=settings.INBOUND_BATCH_SIZE, help="messages per task")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    BATCH["size"] = args.batch
    if not current_app.conf.broker_url or settings.CELERY_TASK_ALWAYS_EAGER:
        sys.exit("set CELERY_BROKER_URL: without a broker the tasks run inside message_receive")
    logs_to_file(ROOT / "var" / "worker-cost.log")
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
    sink = sink_start()
    try:
        Shortcode.objects.filter(number=SHORTCODE).update(
            provider="generic",
            dlt_bound=False,
            provider_config={"outbound_url": f"http://127.0.0.1:{SINK_PORT}/send"},
            inbound_limit_per_minute=0,
            max_mps=10000,
        )
        registry_changed()  # an update() sends no signal
        broker_purge()
        run = uuid.uuid4().int % 1000  # each run's phones are new to the database
        warmup, timed, counted = (
            store(run, 0, args.warmup),
            store(run, 1, args.messages),
            store(run, 2, args.counted),
        )
        broker_purge()
        handle_all(warmup)
        figures = time_pass(timed, profile=args.profile)
        counts = count_pass(counted)
        check_replies(warmup + timed + counted, sink_references=sink_received())
    finally:
        sink.terminate()
        SINK_OUT.unlink(missing_ok=True)
        broker_purge()
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(f"{database}, {cache}, broker {current_app.conf.broker_url.split('://')[0]}; sink on :{SINK_PORT}")
    print(f"timed {len(timed)} messages, counted {len(counted)}, {args.batch} to a task")
    print(f"CPU ms/message          {figures['cpu_ms']:.2f}")
    print(f"wall ms/message         {figures['wall_ms']:.2f}")
    print(f"Postgres CPU ms/message {figures['database_cpu_ms']:.2f}  (this process's backend)")
    print(f"SQL statements/message  {counts['statements']:.2f}")
    print(f"transactions/message    {counts['transactions']:.2f}  (atomic commits {counts['commits']:.2f})")
    print(f"Redis round trips/msg   {counts['redis']:.2f}  {counts['redis_commands']}")
    print(f"tasks published/message {counts['publishes']:.2f}")


def logs_to_file(path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    stream = open(path, "a", buffering=1)  # noqa: SIM115 (kept open for the run)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


def sink_start() -> subprocess.Popen:
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink.py"), "--port", str(SINK_PORT), "--out", str(SINK_OUT)]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", SINK_PORT), timeout=0.2):
            return sink
        time.sleep(0.05)
    sink.terminate()
    sys.exit("the sink did not start")


def sink_received() -> list[str]:
    """The references of every send the sink got, in order."""
    time.sleep(0.2)  # the sink writes its line after it answered
    with open(SINK_OUT) as lines:
        return [json.loads(line)["reference"] for line in lines if line.strip()]


def broker_purge() -> None:
    """Empty the broker's queues of this run's tasks: nothing consumes them."""
    with current_app.connection_for_write() as broker:
        for queue in {current_app.conf.task_default_queue, *(q.name for q in current_app.conf.task_queues or ())}:
            with contextlib.suppress(Exception):  # a queue never declared
                broker.default_channel.queue_purge(queue)


def store(run: int, kind: int, count: int) -> list[int]:
    """Store `count` inbound SMS "2", each from its own phone (+91 7/8/9 by kind, the run, n)."""
    ids = []
    for n in range(count):
        sms = InboundSMS(
            sender=f"+91{7 + kind}{run:03d}{n:06d}",
            recipient=SHORTCODE,
            body="2",
            provider_message_id=f"cost-{run}-{kind}-{n}",
            raw={},
        )
        message, created = message_receive(provider="generic", sms=sms)
        assert created
        ids.append(message.id)
    return ids


# The deliver tasks handling published, run as a worker would run them (countdowns not waited
# for), and how many tasks were published in all.
published_deliveries: list[int] = []
published = {"tasks": 0}


@before_task_publish.connect
def deliver_task_note(sender=None, body=None, **kwargs):
    published["tasks"] += 1
    if sender == DELIVER_TASK:
        published_deliveries.append(body[0][0])


def handle_batch(message_ids: list[int]) -> None:
    """What the worker runs for one batch: handle_inbound_batch's body, then each deliver task it queued."""
    inbound_batch_handle(message_ids=message_ids)
    while published_deliveries:
        message_deliver(message_id=published_deliveries.pop(0))


def handle_all(ids: list[int]) -> None:
    for start in range(0, len(ids), BATCH["size"]):
        handle_batch(ids[start : start + BATCH["size"]])


# Messages per handle_inbound_batch task (--batch).
BATCH = {"size": settings.INBOUND_BATCH_SIZE}


def time_pass(ids: list[int], *, profile: bool) -> dict:
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid
    cpu, wall, database_cpu = time.process_time(), time.perf_counter(), backend_cpu_seconds(backend)
    handle_all(ids)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    database_cpu = backend_cpu_seconds(backend) - database_cpu
    if profiler is not None:
        profiler.stop()
        (ROOT / "var" / "worker-cost-profile.txt").write_text(profiler.output_text(unicode=True, show_all=False))
        (ROOT / "var" / "worker-cost-profile.html").write_text(profiler.output_html())
    return {
        "cpu_ms": cpu * 1000 / len(ids),
        "wall_ms": wall * 1000 / len(ids),
        "database_cpu_ms": database_cpu * 1000 / len(ids),
    }


def backend_cpu_seconds(pid: int) -> float:
    """CPU (user + system) a local Postgres backend has used: the database's share of the work."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RedisCounter:
    """Counts redis-py round trips (one per command, one per pipeline) while installed."""

    def __init__(self):
        self.round_trips = 0
        self.commands: dict[str, int] = {}

    @contextlib.contextmanager
    def installed(self):
        originals = redis.Redis.execute_command, redis.client.Pipeline.execute
        counter = self

        def execute_command(client, *args, **options):
            if not isinstance(client, redis.client.Pipeline):
                counter.round_trips += 1
                name = str(args[0]).upper()
                counter.commands[name] = counter.commands.get(name, 0) + 1
            return originals[0](client, *args, **options)

        def pipeline_execute(pipeline, *args, **options):
            if pipeline.command_stack:
                counter.round_trips += 1
                name = "PIPELINE(" + "+".join(str(c[0][0]).upper() for c in pipeline.command_stack) + ")"
                counter.commands[name] = counter.commands.get(name, 0) + 1
            return originals[1](pipeline, *args, **options)

        redis.Redis.execute_command = execute_command
        redis.client.Pipeline.execute = pipeline_execute
        try:
            yield self
        finally:
            redis.Redis.execute_command, redis.client.Pipeline.execute = originals


def count_pass(ids: list[int]) -> dict:
    commits = 0
    outside_atomic = 0
    original_commit = connection._commit

    def counting_commit():
        nonlocal commits
        commits += 1
        return original_commit()

    def note_autocommit(execute, sql, params, many, context):
        nonlocal outside_atomic
        if not connection.in_atomic_block:
            outside_atomic += 1
        return execute(sql, params, many, context)

    counter = RedisCounter()
    published["tasks"] = 0
    connection._commit = counting_commit
    try:
        with (
            CaptureQueriesContext(connection) as queries,
            connection.execute_wrapper(note_autocommit),
            counter.installed(),
        ):
            handle_all(ids)
    finally:
        del connection._commit
    n = len(ids)
    per_message = {name: round(count / n, 2) for name, count in sorted(counter.commands.items())}
    return {
        "statements": len(queries) / n,
        "commits": commits / n,
        "transactions": (commits + outside_atomic) / n,
        "redis": counter.round_trips / n,
        "publishes": published["tasks"] / n,
        "redis_commands": per_message,
    }


def check_replies(ids: list[int], *, sink_references: list[str]) -> None:
    """Every inbound handled once, with exactly one reply, sent once: none lost, none doubled."""
    handled = Message.objects.filter(id__in=ids, status=Status.HANDLED).count()
    replies = Message.objects.filter(in_reply_to_id__in=ids, direction=Direction.OUTBOUND)
    sent = replies.filter(status=Status.SENT).count()
    assert handled == len(ids), f"{handled} of {len(ids)} handled"
    assert replies.count() == len(ids), f"{replies.count()} replies to {len(ids)} messages"
    assert sent == len(ids), f"{sent} of {len(ids)} replies sent"
    references = {str(uuid) for uuid in replies.values_list("uuid", flat=True)}
    assert len(sink_references) == len(ids), f"the sink got {len(sink_references)} sends for {len(ids)} replies"
    assert set(sink_references) == references, "the sink got sends of other messages"


if __name__ == "__main__":
    main()

"""Bulk sends: how long a 10,000-recipient batch takes to be accepted, and the rate it is sent at.

    .venv/bin/python bench/bulk.py [--recipients 10000] [--send 300] [--mps 50]

1. Acceptance: POST /api/v1/batches/ with --recipients recipients (each with a variable),
   through the API view in-process (JSON parsing, validation, normalising, inserts), three
   times; the answer must be 202.
2. Send rate: a batch of --send recipients from a shortcode of --mps messages per second,
   sent to a local sink (bench/sink.py, a generic gateway). The rate is measured from the
   messages' sent times and printed next to the batch's share of the shortcode's speed
   (mps less BULK_REPLY_RESERVE).

On the embedded default (no DATABASE_URL: a SQLite file of its own, var/bench-bulk.sqlite3)
batches advance by the embedded beat, as in `make demo`; with DATABASE_URL, REDIS_URL and
CELERY_BROKER_URL set, a Celery worker on both queues sends them.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsgate.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-secret-key")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT}/var/bench-bulk.sqlite3")
os.environ.setdefault("GATEWAY_ALLOWED_ORIGINS", "http://127.0.0.1:*")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rest_framework.test import APIRequestFactory  # noqa: E402

from api.batches import BatchesView  # noqa: E402
from api.models import ApiClient  # noqa: E402
from bulk.models import Batch  # noqa: E402
from bulk.services import RecipientInput, batch_create  # noqa: E402
from commands.models import Shortcode  # noqa: E402
from delivery.models import Message  # noqa: E402
from delivery.queueing import tasks_run_in_process  # noqa: E402
from smsgate.embedded_beat import EmbeddedBeat  # noqa: E402

SINK_PORT = 8097


def acceptance(recipients: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each of three acceptances (CPU time shows the cost on a busy machine)."""
    shortcode, _ = Shortcode.objects.update_or_create(
        number="57601", defaults={"name": "bench accept", "provider": "console", "dlt_bound": False, "max_mps": 1}
    )
    client = ApiClient(name=f"bench-{uuid.uuid4().hex[:6]}", rate="100000/min")
    token = client.token_set()
    client.save()
    client.shortcodes.set([shortcode])
    view = BatchesView.as_view()
    timings, cpu = [], []
    for attempt in range(3):
        body = {
            "shortcode": "57601",
            "text": "Hi {name}, your offer is inside.",
            "recipients": [{"to": f"+9198{attempt}{n:07d}", "variables": {"name": f"n{n}"}} for n in range(recipients)],
        }
        request = APIRequestFactory().post("/api/v1/batches/", body, format="json", HTTP_AUTHORIZATION=f"Token {token}")
        started, cpu_started = time.perf_counter(), time.process_time()
        response = view(request)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        assert response.status_code == 202, response.data
        # Not sent: the bench measures acceptance only.
        Batch.objects.filter(id=response.data["id"]).update(
            state=Batch.State.CANCELLED, finished_at=django.utils.timezone.now()
        )
    return timings, cpu


def send_rate(count: int, mps: int) -> tuple[float, float]:
    shortcode, _ = Shortcode.objects.update_or_create(
        number="57602",
        defaults={
            "name": "bench send",
            "provider": "generic",
            "dlt_bound": False,
            "max_mps": mps,
            "provider_config": {"outbound_url": f"http://127.0.0.1:{SINK_PORT}/send"},
        },
    )
    Message.objects.filter(shortcode="57602").delete()
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink.py"), "--port", str(SINK_PORT), "--out", os.devnull]
    )
    driver = None
    try:
        time.sleep(0.5)
        if tasks_run_in_process():
            driver = EmbeddedBeat({"bulk-tick": settings.CELERY_BEAT_SCHEDULE["bulk-tick"]}).start()
        else:
            worker = subprocess.Popen(
                # No -Q: every queue smsgate/celery.py declares (bulk, replies, retries...).
                [sys.executable, "-m", "celery", "-A", "smsgate", "worker", "-c", "2"]
                + ["-l", "WARNING", "--without-gossip", "--without-mingle", "-n", f"bench-bulk-{os.getpid()}@%h"],
                cwd=ROOT,
            )
            driver = worker
            time.sleep(4)
        batch = batch_create(
            shortcode=shortcode,
            text="Offer of the day",
            recipients=[RecipientInput(to=f"+9197{n:08d}") for n in range(count)],
        )
        deadline = time.monotonic() + count / (mps * 0.5) + 60
        sent = Message.objects.filter(batch_recipient__batch=batch, status="sent")
        while sent.count() < count and time.monotonic() < deadline:
            time.sleep(0.5)
        times = sorted(sent.values_list("sent_at", flat=True))
    finally:
        if isinstance(driver, EmbeddedBeat):
            driver.stop()
        elif driver is not None:
            driver.terminate()
            driver.wait(20)
        sink.terminate()
        sink.wait(5)
    assert len(times) == count, f"only {len(times)} of {count} sent"
    span = (times[-1] - times[0]).total_seconds()
    return (count - 1) / span if span else float("inf"), span


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--send", type=int, default=300)
    parser.add_argument("--mps", type=int, default=50)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    mode = "embedded beat" if tasks_run_in_process() else "Celery worker"
    print(f"{database}, {mode}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    timings, cpu = acceptance(args.recipients)
    print(
        f"accept {args.recipients} recipients: best {min(timings):.2f} s, "
        f"median {statistics.median(timings):.2f} s ({', '.join(f'{t:.2f}' for t in timings)}); "
        f"CPU of this process {min(cpu):.2f} s best"
    )
    rate, span = send_rate(args.send, args.mps)
    share = args.mps * (1 - settings.BULK_REPLY_RESERVE)
    print(
        f"send {args.send} at a shortcode of {args.mps}/s (batch share {share:.0f}/s): "
        f"{rate:.1f} messages/s over {span:.1f} s ({rate / share:.0%} of the share)"
    )


if __name__ == "__main__":
    main()

"""What one inbound webhook costs, in-process (Django test client, no HTTP server).

    .venv/bin/python bench/webhook_cost.py [--requests 500]

On the embedded default (no DATABASE_URL) tasks run eagerly, so the figure includes
handling the SMS and sending its reply; with DATABASE_URL, REDIS_URL and
CELERY_BROKER_URL set it is the webhook alone (store, queue, answer).
"""

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsgate.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-secret-key")
os.environ.setdefault("WEBHOOK_SECRET", "bench-secret")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
    client, run, timings = Client(), uuid.uuid4().hex[:8], []
    for n in range(args.requests + 20):
        body = json.dumps({"from": f"+9198{n % 10**8:08d}", "to": "57675", "body": "2", "id": f"cost-{run}-{n}"})
        started = time.perf_counter()
        response = client.post(
            "/webhooks/generic/inbound/", body, content_type="application/json", HTTP_X_WEBHOOK_SECRET="bench-secret"
        )
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.content
        if n >= 20:  # warm-up excluded
            timings.append(elapsed)
    timings.sort()
    database = django.conf.settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"{database}, eager tasks: {django.conf.settings.CELERY_TASK_ALWAYS_EAGER}, {len(timings)} webhooks")
    print(
        f"mean {statistics.mean(timings):.2f} ms  p50 {timings[len(timings) // 2]:.2f} ms  "
        f"p99 {timings[int(len(timings) * 0.99)]:.2f} ms"
    )


if __name__ == "__main__":
    main()

"""What one inbound webhook costs in this process: CPU, wall time, SQL statements.

    .venv/bin/python bench/webhook_cost.py [--requests 1000] [--profile] [--middleware]

Requests go through the WSGI application gunicorn serves (smsgate.wsgi: the webhook lane)
with a form body like an aggregator's, no HTTP server in between. With DATABASE_URL,
REDIS_URL and CELERY_BROKER_URL set (Postgres, Redis, a broker) it is the webhook alone:
authenticate, store the message and its channel log row, answer; the inbound dispatcher
publishes later, elsewhere. On the embedded default tasks run in process, so the figure
includes handling the SMS and sending its reply. `--middleware` sends the webhook through
settings.MIDDLEWARE as every other path is, to price the lane; `--profile` prints a
pyinstrument profile instead of the timings.
"""

import argparse
import io
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsgate.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-secret-key")
os.environ.setdefault("WEBHOOK_SECRET", "bench-secret")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from commands.models import Shortcode  # noqa: E402
from smsgate.lanes import LanedApplication  # noqa: E402

RUN = uuid.uuid4().hex[:8]


def webhook(application, n: int) -> None:
    body = f"from=%2B9198{n % 10**8:08d}&to=57675&body=2&id=cost-{RUN}-{n}".encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/webhooks/generic/inbound/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_WEBHOOK_SECRET": settings.WEBHOOK_SECRET,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }
    status = []
    chunks = application(environ, lambda line, headers, exc_info=None: status.append(line))
    b"".join(chunks)
    chunks.close()
    assert status[0].startswith("200"), status


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--middleware", action="store_true", help="through settings.MIDDLEWARE, not the lane")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0, stdout=io.StringIO())
    Shortcode.objects.filter(number="57675").update(
        provider="generic", dlt_bound=False, inbound_limit_per_minute=0, max_mps=10000
    )
    application = WSGIHandler() if args.middleware else LanedApplication()
    for n in range(50):  # warm-up: connections, caches, compiled SQL
        webhook(application, n)
    statements = []
    with connection.execute_wrapper(lambda execute, sql, *rest: statements.append(sql) or execute(sql, *rest)):
        webhook(application, 50)
    requests = range(100, 100 + args.requests)
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        with profiler:
            for n in requests:
                webhook(application, n)
        print(profiler.output_text(unicode=False, color=False))
        return
    backend = connection.connection.info.backend_pid if connection.vendor == "postgresql" else None
    database_cpu = backend_cpu_seconds(backend) if backend else 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    for n in requests:
        webhook(application, n)
    cpu, wall = (time.process_time() - cpu) * 1000 / args.requests, (time.perf_counter() - wall) * 1000 / args.requests
    database_cpu = ((backend_cpu_seconds(backend) - database_cpu) * 1000 / args.requests) if backend else None
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    lane = "settings.MIDDLEWARE" if args.middleware else "webhook lane"
    print(f"{database}, tasks in process: {settings.CELERY_TASK_ALWAYS_EAGER}, {lane}, {args.requests} webhooks")
    print(f"CPU {cpu:.2f} ms/webhook, wall {wall:.2f} ms/webhook, {len(statements)} SQL statements/webhook")
    if database_cpu is not None:
        print(f"Postgres CPU {database_cpu:.2f} ms/webhook (this process's backend)")


def backend_cpu_seconds(pid: int) -> float:
    """CPU (user + system) a local Postgres backend has used: the database's share of the work."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()

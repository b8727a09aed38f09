"""
The embedded default under concurrent webhooks: every inbound gets exactly one reply.

Runs the real thing in a subprocess: `manage.py runserver` (threaded) on a SQLite file
with tasks in-process, as `make demo` does, and fires webhooks at it from many threads.
The test database of this session is not involved.
"""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
SECRET = "concurrency-test-secret"
WEBHOOKS = 20
PHONES = [f"+9198765432{n:02d}" for n in range(5)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str, env: dict, timeout: float = 120) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, timeout=timeout)  # noqa: S603


def answers(url: str) -> bool:
    """The server is up: any HTTP answer will do."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def post_inbound(base_url: str, phone: str, n: int) -> int:
    body = json.dumps({"from": phone, "to": "57675", "body": "2", "id": f"concurrent-{n}"}).encode()
    request = urllib.request.Request(
        f"{base_url}/webhooks/generic/inbound/",
        data=body,
        headers={"Content-Type": "application/json", "X-Webhook-Secret": SECRET},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


@pytest.fixture
def embedded_server(tmp_path):
    """A migrated SQLite file with a shortcode, and a threaded runserver on it; yields (base URL, database, log)."""
    database = tmp_path / "smsgate.sqlite3"
    env = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="concurrency-test-secret-key",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        WEBHOOK_SECRET=SECRET,
        PUBLIC_BASE_URL="",
        LOG_LEVEL="INFO",
        # Whatever the in-process handling could not finish, the sweeps pick up within seconds.
        OUTBOX_SWEEP_AFTER_SECONDS="1",
        SWEEP_INTERVAL_SECONDS="1",
    )
    # Migrated, then shortcode 57675 and its commands written by the same factories the other
    # tests use: one process for both, as each start of Django costs a second or more.
    prepare = (
        "from django.core.management import call_command; call_command('migrate', interactive=False, verbosity=0)\n"
        "from conversations.tests.factories import service_shortcode; service_shortcode()"
    )
    manage("shell", "-c", prepare, env=env)
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.poll() is not None or answers(f"{base_url}/health/"), timeout=60, what="the server")
        assert server.poll() is None, log_path.read_text()
        yield base_url, database, log_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        sys.stderr.write(log_path.read_text()[-5000:])


def replies_by_inbound(database: Path) -> dict[int, list[str]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        inbound = connection.execute("SELECT id FROM delivery_message WHERE direction = 'in'").fetchall()
        replies = connection.execute(
            "SELECT in_reply_to_id, status FROM delivery_message WHERE direction = 'out'"
        ).fetchall()
    found = {message_id: [] for (message_id,) in inbound}
    for in_reply_to_id, status in replies:
        found.setdefault(in_reply_to_id, []).append(status)
    return found


def test_concurrent_webhooks_on_the_embedded_default_each_get_one_reply(embedded_server):
    # given: a threaded server on a SQLite file, tasks in-process
    base_url, database, log_path = embedded_server
    start = threading.Barrier(WEBHOOKS)
    statuses: list[int] = []

    def fire(n: int):
        start.wait()
        statuses.append(post_inbound(base_url, PHONES[n % len(PHONES)], n))

    # when: 20 webhooks at once, several from the same phone
    threads = [threading.Thread(target=fire, args=(n,)) for n in range(WEBHOOKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    # then: all accepted, and every inbound answered exactly once (the sweep may finish some)
    assert statuses == [200] * WEBHOOKS
    wait_until(
        lambda: all(replies == ["sent"] for replies in replies_by_inbound(database).values()),
        timeout=30,
        what="one sent reply per inbound",
    )
    found = replies_by_inbound(database)
    assert len(found) == WEBHOOKS
    assert sorted(len(replies) for replies in found.values()) == [1] * WEBHOOKS
    # and no request had to wait out a locked database: the SQLite options serialize writers
    assert "database is locked" not in log_path.read_text()

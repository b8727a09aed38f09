"""
Shared test fixtures.

Tests run on the production settings (DEBUG off). Without DATABASE_URL, REDIS_URL and
CELERY_BROKER_URL they run on the embedded default; with them, on Postgres and Redis,
and the tests marked `services` run against a real Celery worker that this session
starts. Tests not marked `services` always run Celery tasks in-process.
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import kombu.pools
import kombu.utils.functional
import pytest

SERVICES_ENV = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
WEBHOOK_SECRET = "test-webhook-secret"
# The signing secret of `http` commands the real worker runs (config "secret_env": "HANDLER_SECRET_TESTS").
HANDLER_SECRET_TESTS = "handler-secret-for-tests"
ROOT = Path(__file__).resolve().parent


def services_configured() -> bool:
    return all(os.environ.get(name) for name in SERVICES_ENV)


def pytest_collection_modifyitems(config, items):
    """Tests marked `services` need the real services; without them they are deselected, not skipped."""
    if services_configured():
        return
    selected, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("services") else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_report_header(config):
    if services_configured():
        return "smsgate: Postgres/Redis/Celery run (tests marked 'services' included)"
    return "smsgate: embedded default (tests marked 'services' need DATABASE_URL, REDIS_URL, CELERY_BROKER_URL)"


# Network guard ---------------------------------------------------------------------

_real_connect = socket.socket.connect


def _loopback_only_connect(sock, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
        raise ConnectionRefusedError(f"tests may not reach {address!r}: only loopback is allowed")
    return _real_connect(sock, address)


@pytest.fixture(autouse=True)
def _block_network(monkeypatch):
    """No test reaches a real provider: only loopback (our services, local fakes) is allowed."""
    monkeypatch.setattr(socket.socket, "connect", _loopback_only_connect)


# Settings, cache and Celery ----------------------------------------------------------


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Shortcodes send to the local provider_server, on a port chosen per test.
    settings.GATEWAY_ALLOWED_ORIGINS = ["http://127.0.0.1:*"]


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from delivery import throttle

    # The in-process token buckets (no Redis) are the cache's too: a bucket left by a test
    # that froze time elsewhere would make the next test's sends wait for that time.
    cache.clear()
    throttle._local_buckets.clear()
    yield
    cache.clear()
    throttle._local_buckets.clear()


@pytest.fixture(autouse=True)
def _celery_mode(request):
    """In-process tasks for every test but those marked `services`, which use the real worker."""
    from smsgate.celery import app

    eager = request.node.get_closest_marker("services") is None
    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = eager or saved[0]
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def broker_in_use():
    """Tasks go to the broker, as with CELERY_BROKER_URL set, instead of running here."""
    from smsgate.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = saved


@pytest.fixture(autouse=True)
def _worker_settles(request):
    """
    A test with the real worker ends only once the worker runs no task of it: a task still
    writing would deadlock with the test database's clean-up (TRUNCATE). Its queued leftovers
    are dropped, as the next test's rows are not theirs.
    """
    yield
    if "celery_worker" not in request.fixturenames:
        return
    from smsgate.celery import app

    app.control.purge()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        active = app.control.inspect(timeout=0.5).active() or {}
        if not any(active.values()):
            return


# Webhook helpers -------------------------------------------------------------------


def load_fixture(app: str, provider: str, name: str) -> bytes:
    """A recorded payload from <app>/tests/fixtures/<provider>/<name>; JSON ones must parse."""
    path = ROOT / app / "tests" / "fixtures" / provider / name
    raw = path.read_bytes()
    if path.suffix == ".json":
        json.loads(raw)
    return raw


@pytest.fixture
def post_webhook(client):
    """POST a raw body to a webhook URL, signed for the generic provider unless told otherwise."""

    def post(
        path: str,
        body: bytes | str | dict,
        *,
        content_type: str | None = None,
        headers=None,
        sign=True,
        remote: str = "127.0.0.1",
    ):
        if isinstance(body, dict):
            body = json.dumps(body)
            content_type = content_type or "application/json"
        if isinstance(body, str):
            body = body.encode()
        if content_type is None:
            content_type = "application/json" if body[:1] in (b"{", b"[") else "application/x-www-form-urlencoded"
        extra = {"REMOTE_ADDR": remote}
        if sign:
            extra["HTTP_X_WEBHOOK_SECRET"] = WEBHOOK_SECRET
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        return client.generic("POST", path, body, content_type=content_type, **extra)

    return post


def generic_signed_headers(body: bytes, *, timestamp: int | str | None = None, secret: str = WEBHOOK_SECRET):
    """The generic provider's HMAC headers: hex HMAC-SHA256 of "<timestamp>." + body, signed now unless told."""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Signature-Timestamp": timestamp, "X-Signature": signature}


def sinch_signed_headers(body: bytes, *, secret: str, nonce: str | None = None, timestamp=None) -> dict[str, str]:
    """Sinch's HMAC headers: base64 HMAC-SHA256 of body + ".nonce.timestamp"; a new nonce, signed now, unless told."""
    nonce = uuid.uuid4().hex if nonce is None else nonce
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = body + f".{nonce}.{timestamp}".encode()
    digest = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return {
        "x-sinch-webhook-signature": digest,
        "x-sinch-webhook-signature-nonce": nonce,
        "x-sinch-webhook-signature-timestamp": timestamp,
    }


# A real local HTTP server standing in for a provider's API -----------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class FakeResponse:
    status: int = 200
    body: dict | list | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class ProviderServer:
    """
    Answers every request with the next scripted FakeResponse (the last one repeats),
    or with `respond(request) -> FakeResponse`, and records what it received.
    """

    def __init__(self):
        self.requests: list[RecordedRequest] = []
        self.script: list[FakeResponse] = []  # empty: 200 {"id": "gw-<n>"} for the n-th request
        self.respond: Callable[[RecordedRequest], FakeResponse] | None = None
        self._lock = threading.Lock()
        # Set on stop: wakes a handler still holding back a delayed answer, so stop never waits it out.
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()  # open client connections, closed on stop
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            timeout = 10  # a silent client cannot hold a handler thread, and so stop, for long

            def setup(self):
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self):
                try:
                    super().finish()
                finally:
                    with server._lock:
                        server._connections.discard(self.connection)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                recorded = RecordedRequest(self.command, self.path, dict(self.headers), self.rfile.read(length))
                with server._lock:
                    server.requests.append(recorded)
                    if server.respond is not None:
                        reply = server.respond(recorded)
                    elif server.script:
                        reply = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                    else:
                        reply = FakeResponse(200, {"id": f"gw-{len(server.requests)}"})
                if reply.delay and server._stopping.wait(reply.delay):
                    return  # stopped: the client gave up long ago
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = payload.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.headers.get("Content-Type", "application/json"))
                    for name, value in reply.headers.items():
                        if name != "Content-Type":
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test), or the server stopped

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Handler threads are joined on close (see stop), so none outlives its test.
        self.httpd.daemon_threads = False
        self.httpd.block_on_close = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll: shutdown() waits for the serve loop's next look at its flag.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        """Stop at once: wake delayed answers, end the serve loop, hang up on kept-alive clients, join every thread."""
        self._stopping.set()
        self.httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.httpd.server_close()
        self.thread.join()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return self.requests
            time.sleep(0.01)
        raise AssertionError(f"expected {count} requests at the fake provider, got {len(self.requests)}")


@pytest.fixture
def provider_server():
    server = ProviderServer().start()
    yield server
    server.stop()


# A real Celery worker for tests marked `services` --------------------------------------


def _database_url(db: dict) -> str:
    user = quote(db.get("USER") or "")
    password = quote(db.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def worker_env() -> dict:
    """The environment of the test session's own processes (worker, dispatcher): the test database and local peers."""
    from django.conf import settings

    return {
        **os.environ,
        # The test database; the processes are stopped before the session drops it.
        "DATABASE_URL": _database_url(settings.DATABASES["default"]),
        "PUBLIC_BASE_URL": "https://sms.example.com",
        "GATEWAY_ALLOWED_ORIGINS": "http://127.0.0.1:*",
        # Status callbacks of the send API go to local receivers, signed with the tests' client secret.
        "CALLBACK_ALLOWED_ORIGINS": "http://127.0.0.1:*",
        "CALLBACK_SECRET_TESTS": "callback-secret-for-tests",
        # `http` commands call local endpoints, signed with this secret.
        "HANDLER_HTTP_ALLOWED_NETWORKS": "127.0.0.0/8",
        "HANDLER_SECRET_TESTS": HANDLER_SECRET_TESTS,
    }


def process_start(arguments: list[str], log_path: Path) -> subprocess.Popen:
    """One of the session's processes, from the project's folder, its output in `log_path`."""
    with open(log_path, "w") as log:
        return subprocess.Popen(arguments, cwd=ROOT, env=worker_env(), stdout=log, stderr=subprocess.STDOUT)


def worker_start(name: str, log_path: Path, *options: str) -> subprocess.Popen:
    """A `celery worker` named `name` on the real broker; `options` add to its command line (-Q, -c)."""
    return process_start(
        [sys.executable, "-m", "celery", "-A", "smsgate", "worker", "-l", "INFO", "-n", name, *options]
        + ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        # The handlers the test data registers (test_ask), so the worker runs what the test set up.
        + ["--include", "conversations.tests.factories"],
        log_path,
    )


def processes_stop(*running: subprocess.Popen) -> None:
    """Stop the processes: SIGTERM, then SIGKILL after 20 s."""
    for process in running:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory):
    """
    A `celery worker` process on the test database, the real broker and Redis, consuming
    every queue smsgate/celery.py declares (no -Q), and the inbound dispatcher beside it
    (conversations/dispatch.py), which queues what the webhooks store.
    """
    from smsgate.celery import app

    app.control.purge()
    logs = tmp_path_factory.mktemp("worker")
    process = worker_start(f"test-{os.getpid()}@%h", logs / "worker.log", "-c", "2")
    dispatcher = None
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{(logs / 'worker.log').read_text()}")
        dispatcher = process_start([sys.executable, "manage.py", "inbound_dispatch"], logs / "dispatcher.log")
        yield process
    finally:
        processes_stop(*(running for running in (dispatcher, process) if running is not None))
        for name, running in (("worker.log", process), ("dispatcher.log", dispatcher)):
            if running is not None and running.returncode not in (0, -15, None):
                sys.stderr.write((logs / name).read_text()[-5000:])


def generic_inbound(client, phone: str, text: str, message_id: str):
    """POST an inbound SMS to shortcode 57675 through the generic webhook, authenticated."""
    return client.post(
        "/webhooks/generic/inbound/",
        {"from": phone, "to": "57675", "body": text, "id": message_id},
        content_type="application/json",
        HTTP_X_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )


@contextlib.contextmanager
def broker_down():
    """Point this process's Celery producer at a port where nothing listens, then back (a broker outage)."""
    from smsgate.celery import app

    def reset_pools():
        kombu.pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    # The producer's reconnect loop (kombu's retry_over_time) waits between attempts until its
    # time-out: on its own clock, time travels by each wait instead of sleeping through it.
    waited = [0.0]

    def travel(seconds: float) -> None:
        waited[0] += seconds

    real_clock = kombu.utils.functional.time
    saved = app.conf.broker_url, app.conf.broker_write_url
    app.conf.broker_url = app.conf.broker_write_url = "redis://127.0.0.1:9/0"
    reset_pools()
    try:
        with (
            mock.patch.object(kombu.utils.functional, "sleep", travel),
            mock.patch.object(kombu.utils.functional, "time", lambda: real_clock() + waited[0]),
        ):
            yield
    finally:
        app.conf.broker_url, app.conf.broker_write_url = saved
        reset_pools()


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# A real browser ------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def _chromium(live_server):
    """
    Headless Debian Chromium driven by its own chromedriver: nothing is downloaded (the
    driver path is given, so Selenium Manager never runs). `.ci/run` installs both with
    apt-get; a machine without them fails here rather than skipping. It depends on the
    live server so that it quits first: its idle keep-alive connections then end while the
    server still shares the test database's connection with its threads.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,800")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def browser(_chromium, live_server, monkeypatch):
    """
    The session's browser at the test's live server, cookies cleared, window 1280x800.

    `browser.go(path)` opens a page; `browser.login(user)` signs a user in through the
    admin's own login form (its password must be "pw").
    """
    from django.db import connections
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    # The browser talks to chromedriver and the live server on loopback only.
    monkeypatch.setattr(socket.socket, "connect", _loopback_only_connect)
    # The live server answers each request on a thread of its own: with persistent
    # connections those threads would hold database sessions past the test database's end.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    driver = _chromium
    driver.delete_all_cookies()
    driver.set_window_size(1280, 800)

    def go(path: str):
        driver.get(live_server.url + path)
        return driver

    def login(user, password: str = "pw"):  # noqa: S107 (the test users' password)
        go("/admin/login/?next=/admin/")
        driver.find_element(By.NAME, "username").send_keys(user.get_username())
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        WebDriverWait(driver, 10).until(expected_conditions.presence_of_element_located((By.ID, "user-tools")))
        return driver

    def wait_for(css: str, timeout: float = 10):
        return WebDriverWait(driver, timeout).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
        )

    driver.go = go
    driver.login = login
    driver.wait_for = wait_for
    driver.live_server_url = live_server.url
    yield driver
    # A page left open keeps polling (the live conversation page): its requests would reach
    # the live server during the next test, on that test's database connection.
    driver.get("about:blank")

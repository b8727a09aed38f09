"""The `http` handler (a shortcode's code 4) against real local servers that misbehave on purpose."""

import itertools
import socket
import socketserver
import threading
import time
from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from commands.models import Command
from commands.services import command_update
from commands.tests.factories import CommandFactory, ShortcodeFactory
from conftest import FakeResponse
from conversations import http_handler
from conversations.handling import inbound_handle
from conversations.http_handler import address_allowed
from conversations.receiving import message_receive
from delivery.models import ChannelLog, Message
from delivery.providers.base import InboundSMS
from delivery.redaction import MASK, redact
from delivery.statuses import Direction

PHONE = "+919876543210"
FALLBACK = "Sorry, this service is unavailable right now. Please try again later."
SECRET = "s3cr3t-offers-token-0042"
SIGNING_ENV = "HANDLER_SECRET_OFFERS_SIGNING"
SIGNING_SECRET = "offers-signing-secret-7781"
_message_ids = itertools.count(1)


def offers_shortcode() -> None:
    """Shortcode 57675 whose code 4 (OFFERS) asks another system for the reply."""
    CommandFactory(
        shortcode=ShortcodeFactory(number="57675"),
        code="4",
        name="Offers",
        handler_key="http",
        config={"endpoint": "https://offers.example.com/v1", "secret_env": SIGNING_ENV, "timeout": 3},
        aliases=["OFFERS"],
    )


@pytest.fixture
def shortcode(db):
    offers_shortcode()


@pytest.fixture
def loopback_allowed(settings):
    settings.HANDLER_HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch):
    monkeypatch.setenv(SIGNING_ENV, SIGNING_SECRET)


@pytest.fixture(autouse=True)
def pauses(monkeypatch) -> list[float]:
    """The pauses between attempts, taken by time travel: recorded, never slept."""
    taken: list[float] = []
    monkeypatch.setattr(http_handler, "backoff_sleep", taken.append)
    return taken


def offers(config: dict) -> None:
    """Point code 4 at `config` (saved as it is, unvalidated, like an old row), signed unless it says otherwise."""
    config = {"secret_env": SIGNING_ENV, **config} if isinstance(config, dict) else config
    Command.objects.filter(shortcode__number="57675", code="4").update(config=config)


def sms(text: str) -> str:
    """Receive and handle one SMS to shortcode 57675; the reply text ('' for none)."""
    inbound, _ = message_receive(
        provider="generic",
        sms=InboundSMS(sender=PHONE, recipient="57675", body=text, provider_message_id=f"hh-{next(_message_ids)}"),
    )
    inbound_handle(message_id=inbound.id)
    reply = Message.objects.filter(in_reply_to=inbound).first()
    return reply.body if reply else ""


class RawServer:
    """A TCP server on 127.0.0.1 that answers each connection with `serve(sock)`: answers no HTTP server would send."""

    def __init__(self, serve: Callable[[socket.socket], None]):
        self.connections = 0
        self.done = threading.Event()
        self.stopping = threading.Event()  # set on stop: a slow `serve` waits on it instead of sleeping
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                outer.connections += 1
                self.request.settimeout(10)  # a `serve` blocked on a silent client cannot hold stop for long
                try:
                    serve(self.request)
                except OSError:
                    pass  # the client hung up
                finally:
                    outer.done.set()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        # Connection threads are joined on close, so none outlives its test.
        self.server.daemon_threads = False
        self.server.block_on_close = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll: shutdown() waits for the serve loop's next look at its flag.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def raw_server():
    servers = []

    def start(serve):
        servers.append(RawServer(serve))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def read_request(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    while len(body) < length:
        body += sock.recv(4096)


# Answers -----------------------------------------------------------------------------


def test_replies_with_the_endpoints_answer(shortcode, provider_server, loopback_allowed):
    # given
    offers({"endpoint": f"{provider_server.url}/offers"})
    provider_server.script = [FakeResponse(200, {"reply": "50% off today"})]
    # when
    reply = sms("4 weekend")
    # then
    assert reply == "50% off today"
    assert provider_server.requests[0].json() == {"phone": PHONE, "code": "4", "args": "weekend", "shortcode": "57675"}


@pytest.mark.parametrize(
    "response",
    [
        FakeResponse(500, {"error": "boom"}),
        FakeResponse(200, "not json"),
        FakeResponse(200, {"no_reply": True}),
        FakeResponse(200, ["a", "list"]),
        FakeResponse(200, {"reply": "late"}, delay=2.0),
    ],
)
def test_a_failed_answer_gets_the_fallback(shortcode, provider_server, loopback_allowed, response, caplog):
    offers({"endpoint": f"{provider_server.url}/offers", "timeout": 0.5})
    provider_server.script = [response]
    assert sms("4") == FALLBACK
    assert "http handler" in caplog.text


def test_the_commands_own_fallback_text(shortcode, provider_server, loopback_allowed):
    offers({"endpoint": f"{provider_server.url}/offers", "fallback": "Offers are resting. Try later."})
    provider_server.script = [FakeResponse(503, {})]
    assert sms("4") == "Offers are resting. Try later."


def test_an_unreachable_endpoint_gets_the_fallback(shortcode, loopback_allowed):
    offers({"endpoint": "http://127.0.0.1:9/offers", "timeout": 0.5})
    assert sms("4") == FALLBACK


# Redirects, size, deadline -------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_our_headers_stay_home(
    shortcode, provider_server, loopback_allowed, monkeypatch, status
):
    # given: the endpoint redirects to another host, which would receive our headers
    monkeypatch.setenv("HANDLER_SECRET_OFFERS_TOKEN", SECRET)
    elsewhere = type(provider_server)().start()
    try:
        offers(
            {
                "endpoint": f"{provider_server.url}/offers",
                "headers": {"Authorization": "Bearer {env:HANDLER_SECRET_OFFERS_TOKEN}", "X-Team": "offers"},
            }
        )
        provider_server.script = [FakeResponse(status, {}, headers={"Location": f"{elsewhere.url}/steal"})]
        # when
        reply = sms("4")
        # then
        assert reply == FALLBACK
        assert len(provider_server.requests) == 1
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_a_40_mb_answer_is_refused_without_reading_it(shortcode, raw_server, loopback_allowed, declared):
    # given: an endpoint that answers 40 MB, with or without saying so up front
    size = 40 * 1024 * 1024
    sent = []

    def flood(sock):
        read_request(sock)
        length = f"Content-Length: {size}\r\n" if declared else "Connection: close\r\n"
        sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}\r\n".encode())
        piece, total = b" " * 65536, 0
        try:
            while total < size:
                sock.sendall(piece)
                total += len(piece)
        finally:
            sent.append(total)

    server = raw_server(flood)
    offers({"endpoint": f"{server.url}/offers"})
    # when
    reply = sms("4")
    # then: we hung up long before the server could send it all
    assert reply == FALLBACK
    assert server.done.wait(10)
    assert sent[0] < size // 2


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_slow_drip_answer_is_cut_at_the_deadline(shortcode, raw_server, loopback_allowed, settings, where):
    # given: an endpoint that sends one byte every 0.1 s, each well within a read timeout
    settings.HANDLER_HTTP_TIMEOUT_SECONDS = 0.3
    body = b'{"reply": "too late"}'
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()

    def drip(sock):
        read_request(sock)
        slow = head + body
        if where == "body":
            sock.sendall(head)
            slow = body
        for byte in slow:
            sock.sendall(bytes([byte]))
            if server.stopping.wait(0.1):
                return

    server = raw_server(drip)
    offers({"endpoint": f"{server.url}/offers", "retries": 1})
    # when
    started = time.monotonic()
    reply = sms("4")
    elapsed = time.monotonic() - started
    # then: each attempt cut near its deadline, long before the whole answer would have arrived
    assert reply == FALLBACK
    assert server.connections == 2
    assert elapsed < 2 * 0.3 + 0.5


# Addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_private_address_is_refused_unless_allowed(shortcode, provider_server, settings, caplog, host):
    # given: no allowlist
    settings.HANDLER_HTTP_ALLOWED_NETWORKS = []
    settings.HANDLER_HTTP_ALLOWED_HOSTS = []
    port = provider_server.url.rsplit(":", 1)[1]
    offers({"endpoint": f"http://{host}:{port}/offers"})
    provider_server.script = [FakeResponse(200, {"reply": "internal"})]
    # when / then: refused before connecting
    assert sms("4") == FALLBACK
    assert provider_server.requests == []
    assert "private or reserved address" in caplog.text
    # when: the host is allowlisted
    settings.HANDLER_HTTP_ALLOWED_HOSTS = [host]
    # then
    assert sms("4") == "internal"


def test_a_name_resolving_to_any_private_address_is_refused(shortcode, provider_server, settings, monkeypatch):
    # given: a name whose DNS answer mixes a public and a private address
    real_getaddrinfo = socket.getaddrinfo
    port = int(provider_server.url.rsplit(":", 1)[1])

    def dns(host, *args, **kwargs):
        if host != "offers.example.com":
            return real_getaddrinfo(host, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    offers({"endpoint": f"http://offers.example.com:{port}/offers"})
    # when / then
    assert sms("4") == FALLBACK
    assert provider_server.requests == []


@pytest.mark.parametrize(
    "address,allowed",
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 (an address checked, not bound)
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
    ],
)
def test_address_policy(settings, address, allowed):
    settings.HANDLER_HTTP_ALLOWED_NETWORKS = []
    settings.HANDLER_HTTP_ALLOWED_HOSTS = []
    assert address_allowed("offers.example.com", address) is allowed


def test_an_allowlisted_network_opens_its_addresses_only(settings):
    settings.HANDLER_HTTP_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert address_allowed("offers.internal", "10.20.5.6") is True
    assert address_allowed("offers.internal", "10.21.5.6") is False


# Header secrets ------------------------------------------------------------------------


def test_a_header_secret_comes_from_the_environment_and_is_masked(
    shortcode, provider_server, loopback_allowed, monkeypatch, caplog
):
    # given
    caplog.set_level("DEBUG")
    monkeypatch.setenv("HANDLER_SECRET_OFFERS_TOKEN", SECRET)
    offers(
        {
            "endpoint": f"{provider_server.url}/offers",
            "headers": {"Authorization": "Bearer {env:HANDLER_SECRET_OFFERS_TOKEN}"},
        }
    )
    provider_server.script = [FakeResponse(200, {"reply": "50% off"}), FakeResponse(500, {"error": SECRET})]
    # when
    first, second = sms("4"), sms("4")
    # then: the server got the value; nothing we stored or logged shows it
    assert (first, second) == ("50% off", FALLBACK)
    assert provider_server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert redact(f"token {SECRET}") == f"token {MASK}"
    assert "http handler" in caplog.text
    assert SECRET not in caplog.text
    stored = [f"{log.url} {log.request} {log.response} {log.error}" for log in ChannelLog.objects.all()]
    stored += [f"{m.body} {m.raw_payload} {m.error_message}" for m in Message.objects.all()]
    assert not [text for text in stored if SECRET in text]


def test_an_unset_secret_variable_gets_the_fallback_and_sends_nothing(
    shortcode, provider_server, loopback_allowed, caplog
):
    offers(
        {
            "endpoint": f"{provider_server.url}/offers",
            "headers": {"X-Api-Key": "{env:HANDLER_SECRET_NOT_SET_ANYWHERE}"},
        }
    )
    assert sms("4") == FALLBACK
    assert provider_server.requests == []
    assert "HANDLER_SECRET_NOT_SET_ANYWHERE is not set" in caplog.text


@pytest.mark.parametrize(
    "config",
    [
        {"endpoint": "http://offers.example.com/", "headers": {"Authorization": "Bearer abc123"}},
        {"endpoint": "http://offers.example.com/", "headers": {"X-Api-Key": "abc123"}},
        {"endpoint": "http://offers.example.com/", "headers": {"X-Auth-Token": "Bearer {env:HANDLER_SECRET_A} x"}},
        {"endpoint": "http://offers.example.com/", "headers": {"X-Api-Key": "{env:DJANGO_SECRET_KEY}"}},
        {"endpoint": "http://offers.example.com/", "headers": {"X-Team": "{env:DATABASE_URL}"}},
        {"endpoint": "http://offers.example.com/", "headers": {"Host": "internal"}},
        {"endpoint": "http://offers.example.com/", "headers": {"X-Team": "a\r\nX-Injected: 1"}},
        {"endpoint": "http://offers.example.com/", "headers": ["Authorization: abc"]},
        {"endpoint": "http://user:pass@offers.example.com/"},
        {"endpoint": "ftp://offers.example.com/"},
        {"endpoint": "offers.example.com"},
        {"endpoint": "http://offers.example.com/", "timeout": "soon"},
        {"endpoint": "http://offers.example.com/", "retries": 9},
        {"endpoint": "http://offers.example.com/", "retries": "twice"},
        {"endpoint": "http://offers.example.com/", "fallback": ["not", "text"]},
        {"endpoint": "http://offers.example.com/", "headers": {"X-Smsgate-Signature": "{env:HANDLER_SECRET_A}"}},
        {"endpoint": "http://offers.example.com/", "headers": {"Content-Type": "text/xml"}},
        {"endpoint": "http://offers.example.com/", "secret_env": None},
        {"endpoint": "http://offers.example.com/", "secret_env": "DJANGO_SECRET_KEY"},
        {"endpoint": "http://offers.example.com/", "secret_env": "HANDLER_SECRET_"},
        ["not", "an", "object"],
    ],
)
def test_saving_an_unsafe_http_config_is_refused(shortcode, config):
    command = Command.objects.get(shortcode__number="57675", code="4")
    command.config = {"secret_env": SIGNING_ENV, **config} if isinstance(config, dict) else config
    with pytest.raises(ValidationError) as raised:
        command_update(command=command)
    assert "config" in raised.value.message_dict


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer {env:HANDLER_SECRET_OFFERS_TOKEN}"},
        {"X-Api-Key": "{env:HANDLER_SECRET_OFFERS_KEY}", "X-Team": "offers"},
    ],
)
def test_saving_a_safe_http_config(shortcode, headers):
    command = Command.objects.get(shortcode__number="57675", code="4")
    command.config = {
        "endpoint": "https://offers.example.com/v1",
        "secret_env": SIGNING_ENV,
        "headers": headers,
        "timeout": 2,
        "retries": 1,
    }
    command_update(command=command)
    command.refresh_from_db()
    assert command.config["headers"] == headers


def test_the_admin_refuses_a_literal_secret_and_shows_only_references(shortcode, admin_client, monkeypatch):
    # given
    monkeypatch.setenv("HANDLER_SECRET_OFFERS_TOKEN", SECRET)
    command = Command.objects.get(shortcode__number="57675", code="4")
    form = {
        "shortcode": command.shortcode_id,
        "code": "4",
        "name": "Offers",
        "handler_key": "http",
        "active": "on",
        "aliases-TOTAL_FORMS": "0",
        "aliases-INITIAL_FORMS": "0",
        "aliases-MIN_NUM_FORMS": "0",
        "aliases-MAX_NUM_FORMS": "1000",
    }
    url = f"/admin/commands/command/{command.pk}/change/"
    # when: a literal token
    literal = (
        '{"endpoint": "https://offers.example.com/", "secret_env": "HANDLER_SECRET_OFFERS_SIGNING", '
        '"headers": {"Authorization": "Bearer abc123"}}'
    )
    response = admin_client.post(url, {**form, "config": literal})
    # then
    assert response.status_code == 200
    assert b"carries a credential" in response.content
    # when: a reference
    reference = (
        '{"endpoint": "https://offers.example.com/", "secret_env": "HANDLER_SECRET_OFFERS_SIGNING", '
        '"headers": {"Authorization": "Bearer {env:HANDLER_SECRET_OFFERS_TOKEN}"}}'
    )
    assert admin_client.post(url, {**form, "config": reference}).status_code == 302
    # then
    page = admin_client.get(url).content.decode()
    assert "{env:HANDLER_SECRET_OFFERS_TOKEN}" in page
    assert SECRET not in page


# Transactions ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_endpoint_is_called_with_no_transaction_open(provider_server, loopback_allowed, monkeypatch):
    # given: a spy on connections from this thread, noting whether a transaction was open
    offers_shortcode()
    offers({"endpoint": f"{provider_server.url}/offers"})
    provider_server.script = [FakeResponse(200, {"reply": "50% off today"})]
    port = int(provider_server.url.rsplit(":", 1)[1])
    guarded_connect = socket.socket.connect
    in_transaction = []

    def spy(sock, address):
        if isinstance(address, tuple) and address[1] == port:
            in_transaction.append(connection.in_atomic_block)
        return guarded_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    # when
    reply = sms("4")
    # then
    assert reply == "50% off today"
    assert in_transaction == [False]
    inbound = Message.objects.get(direction=Direction.INBOUND)
    assert inbound.status == "handled"
    assert Message.objects.filter(in_reply_to=inbound).count() == 1

"""The fake provider every send test talks to: it stops at once and leaves no thread behind."""

import threading
import time

import pytest
import requests

from conftest import FakeResponse, ProviderServer


def idle(server: ProviderServer) -> None:
    pass


def answered_over_keep_alive(server: ProviderServer) -> None:
    # An HTTP/1.1 client keeps the connection open, and the handler waits on it for a next request.
    server.httpd.RequestHandlerClass.protocol_version = "HTTP/1.1"
    session = requests.Session()
    assert session.post(f"{server.url}/sms", json={}, timeout=5).status_code == 200


def abandoned_while_delayed(server: ProviderServer) -> None:
    # The client gives up while the server still holds back its answer.
    server.script = [FakeResponse(200, {"id": "late"}, delay=30)]
    with pytest.raises(requests.Timeout):
        requests.post(f"{server.url}/sms", json={}, timeout=0.1)


@pytest.mark.parametrize("before_stop", [idle, answered_over_keep_alive, abandoned_while_delayed])
def test_stop_is_immediate_and_joins_every_thread(before_stop):
    # given
    threads_before = set(threading.enumerate())
    server = ProviderServer().start()
    before_stop(server)
    # when
    started = time.monotonic()
    server.stop()
    elapsed = time.monotonic() - started
    # then: no wait for a poll interval, a delay or a client, and nothing left running
    assert elapsed < 0.25
    assert set(threading.enumerate()) <= threads_before

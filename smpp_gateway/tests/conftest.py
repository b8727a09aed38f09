"""Fixtures for the SMPP bind: a real SMSC on 127.0.0.1, a shortcode bound to it, and a clock that travels."""

import time

import pytest

from commands.tests.factories import ShortcodeFactory
from smpp_gateway.bind import Bind
from smpp_gateway.tests.smsc import TestSMSC

PASSWORD_ENV = "SMPP_TEST_PASSWORD"
PASSWORD = "s3cret-pw"


class TravellingClock:
    """Time for the bind: it moves only when the bind sleeps (each wait recorded) or a test travels."""

    def __init__(self):
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds

    def travel(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def smsc():
    server = TestSMSC(password=PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def smpp_options(smsc, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    return {
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": "smsgate",
        "password_env": PASSWORD_ENV,
        "system_type": "OTP",
        "window": 10,
        "enquire_link_seconds": 30,
    }


@pytest.fixture
def smpp_shortcode(db, smpp_options):
    return ShortcodeFactory(number="57675", provider="smpp", provider_config=smpp_options, max_mps=100)


@pytest.fixture
def clock():
    return TravellingClock()


@pytest.fixture
def bind(smpp_shortcode, clock):
    held = Bind(smpp_shortcode.number, clock=clock, sleep=clock.sleep, poll_seconds=0.01)
    held.start()
    yield held
    held.stop(drain_seconds=0)


def run_until(bind: Bind, predicate, *, timeout: float = 10.0, what: str = "condition") -> None:
    """Turn the bind (a real SMSC answers in its own thread) until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bind.step()
        if predicate():
            return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")

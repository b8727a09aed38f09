"""
`smpp_worker`, the process that holds a bind: what it refuses to start with, how compose
supervises it, and (with the real services) the process itself against the test SMSC,
killed mid-send and started again: nothing lost, nothing doubled.
"""

import os
import signal
import subprocess
import sys

import pytest
import yaml
from django.core.management import CommandError, call_command

from commands.tests.factories import ShortcodeFactory
from conftest import ROOT, _database_url, wait_until
from delivery.models import Message
from delivery.statuses import Direction, Status
from delivery.tests.factories import OutboundMessageFactory
from smpp_gateway.tests.conftest import PASSWORD, PASSWORD_ENV
from smpp_gateway.tests.smsc import HOLD


@pytest.mark.parametrize(
    ("provider", "options", "env", "error"),
    [
        pytest.param(None, {}, {}, "no shortcode 57675", id="unknown-shortcode"),
        pytest.param("console", {}, {}, "sends through 'console'", id="not-an-smpp-shortcode"),
        pytest.param("smpp", {"system_id": "x"}, {}, "'host' is required", id="options-that-do-not-check"),
        pytest.param("smpp", {"host": "h", "system_id": "x"}, {}, "SMPP_PASSWORD is not set", id="password-unset"),
    ],
)
@pytest.mark.django_db
def test_the_worker_refuses_to_start_for_a_shortcode_that_cannot_bind(monkeypatch, provider, options, env, error):
    # given
    monkeypatch.delenv("SMPP_PASSWORD", raising=False)
    if provider is not None:
        ShortcodeFactory(number="57675", provider=provider, provider_config=options)

    # when / then
    with pytest.raises(CommandError, match=error):
        call_command("smpp_worker", "--shortcode", "57675")


def test_compose_supervises_one_worker_per_bind_under_the_smpp_profile():
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["smpp-worker"]
    assert service["profiles"] == ["smpp"]
    assert service["restart"] == "unless-stopped"
    assert "manage.py smpp_worker --shortcode" in service["command"]
    assert "SMPP_PASSWORD" in service["environment"]


def worker(settings) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(settings.DATABASES["default"]),
        PASSWORD_ENV: PASSWORD,
    }
    command = [sys.executable, "manage.py", "smpp_worker", "--shortcode", "57675", "--poll-seconds", "0.05"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> int:
    process.send_signal(sig)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_worker_process_sends_receives_and_survives_being_killed(settings, smsc, smpp_options):
    # given: a shortcode on the test SMSC, whose first submit it holds unanswered
    ShortcodeFactory(number="57675", provider="smpp", provider_config=smpp_options)
    first = OutboundMessageFactory(provider="smpp", shortcode="57675", body="first")
    smsc.answers.append(HOLD)

    # when: the worker submits it, and is killed before any answer
    process = worker(settings)
    wait_until(lambda: len(smsc.submits) == 1, timeout=60, what="first submit")
    assert Message.objects.get(id=first.id).status == Status.SENDING
    assert stop(process, signal.SIGKILL) == -signal.SIGKILL

    # then: a new worker takes it back and sends it; the SMSC accepts it once
    process = worker(settings)
    try:
        wait_until(lambda: Message.objects.get(id=first.id).status == Status.SENT, timeout=60, what="first sent")
        assert [submit.payload for submit in smsc.accepted] == [b"first"]

        # and it keeps working: a new message, an MO
        second = OutboundMessageFactory(provider="smpp", shortcode="57675", body="second")
        wait_until(lambda: Message.objects.get(id=second.id).status == Status.SENT, timeout=30, what="second sent")
        smsc.mo(b"BAL")
        wait_until(
            lambda: Message.objects.filter(direction=Direction.INBOUND, body="BAL").exists(), timeout=30, what="MO"
        )
    finally:
        code = stop(process)

    # then: SIGTERM unbinds cleanly
    assert code == 0, process.stdout.read().decode()[-3000:]
    wait_until(lambda: smsc.received[-1][0] == "unbind", timeout=5, what="unbind")
    # each accepted once, in order (the MO's answer may be among them when the session's
    # worker and dispatcher are running)
    sent = [submit.payload for submit in smsc.accepted if submit.payload in (b"first", b"second")]
    assert sent == [b"first", b"second"]

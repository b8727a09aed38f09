"""
Error tracking: with SENTRY_DSN set, errors reach Sentry with every declared secret and
phone number masked, and tagged with the correlation id of the message being handled.

Each test starts the service's settings in a fresh process (the SDK is global to a
process) and points the DSN at a local server standing in for Sentry.
"""

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+919876543210"
GATEWAY_KEY = "gw-secret-key-98765"

# An error raised while a message is handled, quoting the gateway's key and the phone,
# after an INFO line naming the phone (a breadcrumb) and an ERROR line (an event of its own).
SCRIPT = f"""
import logging
import django
import sentry_sdk

django.setup()
from django.conf import settings
from delivery.correlation import correlation_bind


def charge(phone, gateway_answer):
    raise RuntimeError(f"gateway refused {{phone}}: {{gateway_answer}}")


with correlation_bind("corr-0042"):
    logging.getLogger("smsgate.test").info("sending to %s", "{PHONE}")
    logging.getLogger("smsgate.test").error("no route to %s with %s", "{PHONE}", settings.GATEWAY_API_KEY)
    try:
        charge("{PHONE}", "bad key " + settings.GATEWAY_API_KEY)
    except RuntimeError:
        sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=10)
"""


def run_with_sentry(provider_server, **extra_env) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "smsgate.settings",
        "SENTRY_DSN": f"http://publickey@{provider_server.url.removeprefix('http://')}/1",
        "GATEWAY_API_KEY": GATEWAY_KEY,
        **extra_env,
    }
    done = subprocess.run(  # noqa: S603  (our own interpreter and script)
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    bodies = []
    for request in provider_server.requests:
        body = request.body
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        bodies.append(body.decode())
    return "\n".join(bodies)


@pytest.mark.parametrize("log_level", ["INFO", "DEBUG"])
def test_errors_reach_sentry_without_secrets_or_phones(provider_server, log_level):
    # when: a process with SENTRY_DSN set reports an error (phones are masked even at DEBUG)
    sent = run_with_sentry(provider_server, LOG_LEVEL=log_level)

    # then: the local "Sentry" received the envelopes
    assert all(request.path == "/api/1/envelope/" for request in provider_server.requests)
    assert "RuntimeError" in sent
    assert "gateway refused +91******3210: bad key ********" in sent
    assert "no route to +91******3210 with ********" in sent
    # and nothing of the secret or the phone
    assert GATEWAY_KEY not in sent
    assert "9876543210" not in sent
    # tagged with the correlation id of the message being handled
    assert '"correlation_id":"corr-0042"' in sent.replace(" ", "")


def test_without_a_dsn_nothing_is_sent(provider_server):
    sent = run_with_sentry(provider_server, SENTRY_DSN="")
    assert sent == ""
    assert provider_server.requests == []

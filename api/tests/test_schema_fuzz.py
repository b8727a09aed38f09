"""
The live OpenAPI schema, fuzzed with schemathesis against the WSGI app: no 5xx, and no
answer the schema does not describe, with every check on.

A request the schema allows can still be refused for what it means (a number that is no
number, a text over the segment limit): for positive data 400 and 422 are expected
answers too, as the API documents them.
"""

import json
import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from commands.tests.factories import ShortcodeFactory
from delivery.models import Message

# Enough examples per operation to reach every field, few enough that the whole run stays well under 90 s.
# The same examples on every run, so CI is repeatable; a longer search draws new ones:
# SCHEMA_FUZZ_EXAMPLES=1000 SCHEMA_FUZZ_RANDOM=1 pytest api/tests/test_schema_fuzz.py
EXAMPLES = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "30"))
RANDOM = bool(os.environ.get("SCHEMA_FUZZ_RANDOM"))
WSGI_HOST = "localhost"  # the Host schemathesis's WSGI client sends

CONFIG = SchemathesisConfig.from_dict(
    {
        # The token is ours to send (below), not a parameter to fuzz; `ignored_auth` still checks it is enforced.
        "generation": {"mode": "all", "max-examples": EXAMPLES, "with-security-parameters": False},
        "checks": {
            "enabled": True,
            "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422", "429"]},
        },
    }
)


# The schema as the running app serves it, fetched through its WSGI interface when the tests are collected.
with override_settings(ALLOWED_HOSTS=[WSGI_HOST]):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=CONFIG)


@pytest.fixture
def _test_connection_kept():
    """
    The WSGI app closes "old" database connections around each request; inside the test's
    transaction on PostgreSQL that would close the test's own. Django's test client
    holds them back the same way.
    """
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def token(api_client, settings, _test_connection_kept):
    settings.ALLOWED_HOSTS = [WSGI_HOST]
    ShortcodeFactory(number="57676")  # another shortcode, not the client's
    return api_client.token


def test_the_schema_is_served_with_its_viewers(client):
    assert client.get("/api/schema/").status_code == 200
    for path in ("/api/docs/", "/api/redoc/"):
        page = client.get(path)
        assert page.status_code == 200
        # The viewers' scripts are our own static files (drf-spectacular-sidecar), not a CDN's.
        assert b"/static/drf_spectacular_sidecar/" in page.content
        assert b"cdn.jsdelivr" not in page.content


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_schema(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"})


# Hostile bodies the schema does not describe: random bytes under random content types.
HOSTILE = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "",
    ]
)
BODIES = st.one_of(
    st.binary(max_size=2000),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode()),
)


@pytest.mark.parametrize("path", ["/api/v1/messages/", "/send-sms"])
@HOSTILE
@given(body=BODIES, content_type=CONTENT_TYPES, key=st.none() | st.text(max_size=20))
def test_hostile_bodies_are_4xx_and_store_nothing(api, path, body, content_type, key):
    before = Message.objects.count()
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    try:
        response = api.generic("POST", path, body, content_type=content_type, **headers)
    except ValueError:
        return  # the test client itself cannot put such a header on the wire
    assert response.status_code < 500
    assert response["Content-Type"] == "application/json"
    if response.status_code >= 400:
        assert Message.objects.count() == before

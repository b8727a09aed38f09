"""
Every webhook path under hostile input (hypothesis): random bytes under random content
types, deep nesting, broken form and multipart encodings, odd Unicode, wrong types and
bodies around WEBHOOK_MAX_BODY_BYTES, each sent unsigned, signed as its provider expects,
and with every provider open (DEBUG on, no secrets) so that the parsers see it too.

Whatever arrives, the answer is below 500, and a refused request leaves no Message or
DeliveryReport behind (its channel log row is fine). Examples are few and derandomized,
so the file runs in CI in seconds and always the same way.
"""

import json
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from django.core.cache import cache
from django.db import transaction
from django.http import QueryDict
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3
from twilio.request_validator import RequestValidator

from conftest import ROOT, WEBHOOK_SECRET
from delivery.models import DeliveryReport, Message
from delivery.providers import all_providers

BASE = "https://sms.example.com"
TOKEN = "fuzz-webhook-token"
TWILIO_TOKEN = "fuzz-twilio-token"
PLIVO_TOKEN = "fuzz-plivo-token"
PLIVO_NONCE = "fuzz-nonce-0123456789"
MAX_BODY = 64 * 1024
TOKEN_PROVIDERS = ("sinch", "msg91", "gupshup", "textlocal")
OPEN = {
    "DEBUG": True,
    "WEBHOOK_SECRET": "",
    "TWILIO_AUTH_TOKEN": "",
    "TWILIO_SHARED_KEY_SECRET": "",
    "PLIVO_AUTH_TOKEN": "",
    "SINCH_WEBHOOK_SECRET": "",
    **{f"{slug.upper()}_WEBHOOK_TOKEN": "" for slug in TOKEN_PROVIDERS},
}

# Each example is a whole request through the middleware and a view: a few dozen per
# property, the same ones every run (derandomized), keep the suite quick.
FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Every webhook path: each registered provider's two (console's included: it must 404), and the aliases.
PATHS = [
    *(
        (provider.slug, f"/webhooks/{provider.slug}/{kind}/")
        for provider in all_providers()
        for kind in ("inbound", "status")
    ),
    (None, "/sms-handler"),
    (None, "/sms-dlr"),
]
# Field names the providers read, so that random values land where parsers look.
FIELD_NAMES = [
    *("from", "to", "body", "id", "status", "reference", "error_code", "message_id", "message", "text"),
    *("From", "To", "Body", "MessageSid", "SmsSid", "AccountSid", "MessageStatus", "ErrorCode"),
    *("Text", "MessageUUID", "Status", "ParentMessageUUID"),
    *("type", "batch_id", "statuses", "recipients", "recipient", "code", "client_reference", "at"),
    *("sender", "inNumber", "content", "keyword", "customID", "number", "externalId", "msisdn"),
    *("data", "requestId", "report", "mobile", "desc", "failedReason"),
]
ODD_TEXT = [
    "\x00",
    "\ud800",
    "\udfff",
    "\u202e",
    "\u200b",
    "\ufeff",
    "😀",
    "👩‍👩‍👧",
    "é",
    "\r\n",
    "%",
    "+919876543210",
    "57675",
    "mo_text",
    "delivered",
    "x" * 10_000,
]


@dataclass
class Attempt:
    path: str
    slug: str | None
    body: bytes
    content_type: str
    auth: str  # unsigned, signed, open
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def provider_secrets(settings):
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_SHARED_KEY_SECRET = ""
    settings.PLIVO_AUTH_TOKEN = PLIVO_TOKEN
    settings.SINCH_WEBHOOK_SECRET = ""
    settings.WEBHOOK_MAX_BODY_BYTES = MAX_BODY
    for slug in TOKEN_PROVIDERS:
        setattr(settings, f"{slug.upper()}_WEBHOOK_TOKEN", TOKEN)


def _signed(attempt: Attempt) -> tuple[str, dict[str, str]]:
    """The path and headers that authenticate `attempt` as its provider would sign it."""
    headers = dict(attempt.headers)
    path = attempt.path
    if attempt.slug in TOKEN_PROVIDERS:
        return f"{path}{'&' if '?' in path else '?'}token={TOKEN}", headers
    if attempt.method != "POST" and attempt.slug in ("twilio", "plivo"):
        return path, headers  # they sign POSTed forms only: left unsigned, refused with 405 anyway
    if attempt.slug == "twilio":
        validator = RequestValidator(TWILIO_TOKEN)
        if "json" in attempt.content_type:
            path = f"{path}?bodySHA256={validator.compute_hash(attempt.body.decode('utf-8', 'replace'))}"
            headers["X-Twilio-Signature"] = validator.compute_signature(BASE + path, {})
        else:
            headers["X-Twilio-Signature"] = validator.compute_signature(BASE + path, QueryDict(attempt.body))
        return path, headers
    if attempt.slug == "plivo":
        form = QueryDict(attempt.body)
        signed = construct_post_url(BASE + path, {name: form.getlist(name) for name in form}).decode()
        signature = get_signature_v3(PLIVO_TOKEN.encode(), signed, PLIVO_NONCE.encode()).decode()
        headers.update({"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": PLIVO_NONCE})
        return path, headers
    headers["X-Webhook-Secret"] = WEBHOOK_SECRET
    return path, headers


def send(client, attempt: Attempt) -> int:
    """
    Post one attempt and check the two promises; every row it wrote is rolled back with
    the example, so that the next one starts from an empty table.
    """
    cache.clear()  # nonces and rate limits from earlier examples
    path, headers = _signed(attempt) if attempt.auth == "signed" else (attempt.path, dict(attempt.headers))
    extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    with transaction.atomic():
        with override_settings(**OPEN) if attempt.auth == "open" else _nothing():
            response = client.generic(attempt.method, path, attempt.body, content_type=attempt.content_type, **extra)
        assert response.status_code < 500, (attempt, response.content[:500])
        if response.status_code >= 400:
            assert not Message.objects.exists(), (attempt, response.status_code)
            assert not DeliveryReport.objects.exists(), (attempt, response.status_code)
        transaction.set_rollback(True)
    return response.status_code


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# Strategies ---------------------------------------------------------------------------------------

targets = st.sampled_from(PATHS)
auths = st.sampled_from(["unsigned", "signed", "open"])
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fuzzboundary",
    "multipart/form-data",
    "text/plain",
    "application/octet-stream",
    "",
    "application/json; charset=latin-1",
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/vnd.x+json",
    "text/xml",
]
odd_text = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40),
    st.lists(st.sampled_from(ODD_TEXT), min_size=1, max_size=4).map("".join),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
)
wrong_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=3),
)
payloads = st.dictionaries(st.sampled_from(FIELD_NAMES), wrong_values, max_size=8)


def _json_bytes(value) -> bytes:
    # ensure_ascii writes lone surrogates as \ud800 escapes, which is how they arrive in JSON.
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def _form_bytes(data: dict) -> bytes:
    pairs = []
    for name, value in data.items():
        text = value if isinstance(value, str) else json.dumps(value, allow_nan=True)
        pairs.append(f"{quote(name)}={quote(text, errors='surrogatepass')}")
    return "&".join(pairs).encode()


def _multipart_bytes(data: dict) -> bytes:
    lines = []
    for name, value in data.items():
        text = value if isinstance(value, str) else json.dumps(value, allow_nan=True)
        disposition = f'Content-Disposition: form-data; name="{name}"'.encode()
        lines += [b"--fuzzboundary", disposition, b"", text.encode("utf-8", "surrogatepass")]
    return b"\r\n".join([*lines, b"--fuzzboundary--", b""])


@st.composite
def broken_multipart(draw) -> tuple[bytes, str]:
    fields = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), odd_text, max_size=5))
    body = _multipart_bytes(fields)
    mutation = draw(st.sampled_from(["truncate", "boundary", "no-crlf", "junk-header", "none"]))
    content_type = "multipart/form-data; boundary=fuzzboundary"
    if mutation == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif mutation == "boundary":
        content_type = draw(
            st.sampled_from(
                [
                    "multipart/form-data",
                    "multipart/form-data; boundary=",
                    "multipart/form-data; boundary=other",
                    "multipart/form-data; boundary=\xff\xfe",
                    "multipart/form-data; boundary=" + "b" * 300,
                ]
            )
        )
    elif mutation == "no-crlf":
        body = body.replace(b"\r\n", b"\n")
    elif mutation == "junk-header":
        body = body.replace(b"Content-Disposition", b"Content-Disposition: form-data; name=\xff\r\nX", 1)
    return body, content_type


@st.composite
def broken_urlencoded(draw) -> bytes:
    pieces = st.sampled_from(
        [
            "%",
            "%G1",
            "%ZZ",
            "%ff",
            "%c3%28",
            "%ed%a0%80",
            "%00",
            "&&",
            "==",
            "+",
            ";",
            "from=%2B919876543210",
            "to=57675",
            "body=1",
            "From=%2B919876543210",
            "To=57675",
            "Body=2",
            "MessageSid=SM1",
            "MessageUUID=u-1",
            "Text=hi",
            "Status=delivered",
            "status=delivered",
            "id=gw-1",
            "data=%5B%7B",
            "sender=919876543210",
            "inNumber=57675",
            "content=HI",
        ]
    )
    text = "&".join(draw(st.lists(pieces, min_size=1, max_size=10))).encode()
    return text + draw(st.sampled_from([b"", b"\xff\xfe", b"\xc3", b"=\x00", b"&x=\xed\xa0\x80"]))


# The fuzz tests ------------------------------------------------------------------------------------


def _recorded(slug: str | None, path: str) -> list[tuple[str, object]]:
    """The recorded payloads of this path's provider and direction (the generic ones for the aliases)."""
    kind = "status" if path.endswith("/status/") or path == "/sms-dlr" else "inbound"
    app = "conversations" if kind == "inbound" else "delivery"
    folder = ROOT / app / "tests" / "fixtures" / (slug if slug and slug != "console" else "generic")
    seeds = []
    for fixture in sorted(folder.glob(f"{kind}_*")):
        raw = fixture.read_bytes()
        seeds.append(("json", json.loads(raw)) if fixture.suffix == ".json" else ("form", QueryDict(raw).dict()))
    return seeds


# A recorded payload of every path, to be bent a little: most answers are then 200s and
# the field-level 400s, which is where a half-stored row could hide.
SEEDS = [(slug, path, *seed) for slug, path in PATHS for seed in _recorded(slug, path)]


def _dicts(value) -> list[dict]:
    """Every JSON object inside `value`, outermost first."""
    if isinstance(value, dict):
        return [value, *(inner for item in value.values() for inner in _dicts(item))]
    if isinstance(value, list):
        return [inner for item in value for inner in _dicts(item)]
    return []


@pytest.mark.django_db
@settings(FUZZ, max_examples=60)
@given(
    seed=st.sampled_from(SEEDS),
    auth=st.sampled_from(["signed", "signed", "open", "unsigned"]),
    encoding=st.sampled_from(["native", "native", "multipart", "json"]),
    data=st.data(),
)
def test_recorded_payloads_bent(client, seed, auth, encoding, data):
    slug, path, kind, payload = seed
    payload = json.loads(json.dumps(payload))  # a copy: seeds are shared between examples
    objects = _dicts(payload)
    if objects:
        # One object of the payload (a Sinch status entry, say) gets wrong values, mostly
        # under the names it already has, and loses a field or two.
        target = data.draw(st.sampled_from(objects))
        names = st.sampled_from(sorted(target) or FIELD_NAMES) | st.sampled_from(FIELD_NAMES)
        target.update(data.draw(st.dictionaries(names, wrong_values, max_size=3)))
        for name in data.draw(st.sets(st.sampled_from(sorted(target) or FIELD_NAMES), max_size=2)):
            target.pop(name, None)
    if kind == "json" or encoding == "json":
        send(client, Attempt(path, slug, _json_bytes(payload), "application/json", auth))
    elif encoding == "multipart":
        send(client, Attempt(path, slug, _multipart_bytes(payload), "multipart/form-data; boundary=fuzzboundary", auth))
    else:
        send(client, Attempt(path, slug, _form_bytes(payload), "application/x-www-form-urlencoded", auth))


@pytest.mark.django_db
@FUZZ
@given(target=targets, auth=auths, body=st.binary(max_size=2048), content_type=st.sampled_from(CONTENT_TYPES))
def test_random_bytes_under_random_content_types(client, target, auth, body, content_type):
    slug, path = target
    send(client, Attempt(path, slug, body, content_type, auth))


@pytest.mark.django_db
@FUZZ
@given(
    target=targets,
    auth=auths,
    depth=st.integers(min_value=30, max_value=3000),
    opener=st.sampled_from(["[", '{"a":', '{"statuses":[']),
    as_form=st.booleans(),
)
def test_deep_nesting(client, target, auth, depth, opener, as_form):
    slug, path = target
    closer = "".join({"[": "]", "{": "}"}[char] for char in reversed(opener) if char in "[{")
    nested = opener * depth + closer * depth
    if as_form:
        # MSG91 v2 reads a JSON string out of the form field `data`.
        body = f"data={quote(nested)}&from=%2B919876543210&to=57675&body=1".encode()
        send(client, Attempt(path, slug, body, "application/x-www-form-urlencoded", auth))
    else:
        body = f'{{"from":"+919876543210","to":"57675","body":"1","type":"mo_text","x":{nested}}}'.encode()
        send(client, Attempt(path, slug, body, "application/json", auth))


@pytest.mark.django_db
@FUZZ
@given(target=targets, auth=auths, body=broken_urlencoded(), as_query=st.booleans())
def test_broken_urlencoding(client, target, auth, body, as_query):
    slug, path = target
    if as_query:
        # Gupshup reports with GET: the query string is the payload.
        query = quote(body, safe="%&=+;")
        send(client, Attempt(f"{path}?{query}", slug, b"", "", auth, method="GET"))
    else:
        send(client, Attempt(path, slug, body, "application/x-www-form-urlencoded", auth))


@pytest.mark.django_db
@FUZZ
@given(target=targets, auth=auths, multipart=broken_multipart())
def test_broken_multipart(client, target, auth, multipart):
    slug, path = target
    body, content_type = multipart
    send(client, Attempt(path, slug, body, content_type, auth))


@pytest.mark.django_db
@FUZZ
@given(
    target=targets,
    auth=auths,
    data=st.dictionaries(st.sampled_from(FIELD_NAMES), odd_text, min_size=1, max_size=8),
    as_form=st.booleans(),
    header=st.sampled_from(
        [
            None,
            "X-Signature",
            "X-Webhook-Secret",
            "X-Twilio-Signature",
            "X-Plivo-Signature-V3",
            "X-Plivo-Signature-V3-Nonce",
            "x-sinch-webhook-signature",
        ]
    ),
    header_value=st.sampled_from(ODD_TEXT[:9]),
)
def test_odd_unicode(client, target, auth, data, as_form, header, header_value):
    slug, path = target
    headers = {header: header_value} if header else {}
    if as_form:
        attempt = Attempt(path, slug, _form_bytes(data), "application/x-www-form-urlencoded", auth, headers=headers)
    else:
        attempt = Attempt(path, slug, _json_bytes(data), "application/json", auth, headers=headers)
    send(client, attempt)


@pytest.mark.django_db
@FUZZ
@given(
    target=targets,
    auth=auths,
    data=st.one_of(payloads, wrong_values),
    as_form=st.booleans(),
)
def test_wrong_types(client, target, auth, data, as_form):
    slug, path = target
    if as_form and isinstance(data, dict):
        send(client, Attempt(path, slug, _form_bytes(data), "application/x-www-form-urlencoded", auth))
    else:
        send(client, Attempt(path, slug, _json_bytes(data), "application/json", auth))


@pytest.mark.django_db
@settings(FUZZ, max_examples=16)
@given(
    target=targets,
    auth=auths,
    size=st.sampled_from([MAX_BODY - 1, MAX_BODY, MAX_BODY + 1, 4 * MAX_BODY]),
    as_form=st.booleans(),
)
def test_bodies_around_the_size_limit(client, target, auth, size, as_form):
    slug, path = target
    if as_form:
        head = b"from=%2B919876543210&to=57675&MessageSid=SM1&MessageUUID=u&type=mo_text&body="
        body, content_type = head + b"x" * (size - len(head)), "application/x-www-form-urlencoded"
    else:
        head, tail = b'{"from":"+919876543210","to":"57675","type":"mo_text","body":"', b'"}'
        body, content_type = head + b"x" * (size - len(head) - len(tail)) + tail, "application/json"
    assert len(body) == size

    status = send(client, Attempt(path, slug, body, content_type, auth))

    if size > MAX_BODY:
        assert status == 413


# The operators' endpoints -------------------------------------------------------------------------

OPERATOR_PATHS = ["/metrics", "/health/", "/health/live"]


@pytest.mark.django_db
@FUZZ
@given(
    path=st.sampled_from(OPERATOR_PATHS),
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
    query=st.text(max_size=200),
    authorization=st.one_of(st.just(""), odd_text, st.just("Bearer metrics-fuzz-token")),
)
def test_operator_endpoints_never_fail_and_the_metrics_token_opens_only_metrics(
    client, settings, path, method, query, authorization
):
    settings.METRICS_TOKEN = "metrics-fuzz-token"
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.generic(method, f"{path}?{quote(query)}", b"", **extra)
    assert response.status_code < 500 or (path == "/health/" and response.status_code == 503), response.content[:300]
    if path == "/metrics" and method == "GET":
        # the token is the only way in (DEBUG is off and no address is allowed)
        assert (response.status_code == 200) == (authorization == "Bearer metrics-fuzz-token")
    assert not Message.objects.exists()

"""Inbound webhook: what an aggregator sees for good, duplicate and bad requests, and what is stored."""

import hashlib
import hmac
import io
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from freezegun import freeze_time

from commands.tests.factories import CommandFactory, ShortcodeFactory
from conftest import WEBHOOK_SECRET, generic_signed_headers, load_fixture
from delivery.models import ChannelLog, Message
from delivery.statuses import Direction

INBOUND = "/webhooks/generic/inbound/"


@pytest.fixture
def shortcode(db):
    shortcode = ShortcodeFactory(number="57675")
    CommandFactory(shortcode=shortcode, code="2", handler_key="reply", config={"text": "Balance: Rs 10"})
    return shortcode


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fixture", ["inbound_form.txt", "inbound_json.json", "inbound_seed_names.json", "inbound_seed_form.txt"]
)
@pytest.mark.parametrize("path", [INBOUND, "/sms-handler"])
def test_inbound_is_stored_and_answered(shortcode, post_webhook, django_capture_on_commit_callbacks, fixture, path):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(path, load_fixture("conversations", "generic", fixture))
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    inbound = Message.objects.get(direction=Direction.INBOUND)
    assert (inbound.phone, inbound.shortcode, inbound.body, inbound.status) == (
        "+919876543210",
        "57675",
        "2",
        "handled",
    )
    assert Message.objects.get(direction=Direction.OUTBOUND).body == "Balance: Rs 10"


@pytest.mark.django_db
def test_duplicate_inbound_gives_one_message_and_one_reply(shortcode, post_webhook, django_capture_on_commit_callbacks):
    body = load_fixture("conversations", "generic", "inbound_json.json")
    with django_capture_on_commit_callbacks(execute=True):
        responses = [post_webhook(INBOUND, body) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert Message.objects.filter(direction=Direction.INBOUND).count() == 1
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,field",
    [
        ({"to": "57675", "body": "1"}, "from"),
        ({"from": "+919876543210", "body": "1"}, "to"),
        ({"from": "+919876543210", "to": "57675"}, "body"),
        ("to=57675&body=1", "from"),
        ({"from": "+919876543210", "to": "57675", "body": {"nested": 1}}, "body"),
    ],
)
def test_missing_field_is_a_400_naming_it(post_webhook, body, field):
    response = post_webhook(INBOUND, body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert field in response.json()["error"]
    assert not Message.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw,content_type",
    [
        (b"{not json", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
        (b"", "application/x-www-form-urlencoded"),
        (b"<xml/>", "text/xml"),
    ],
)
def test_unparseable_body_is_a_400(post_webhook, raw, content_type):
    response = post_webhook(INBOUND, raw, content_type=content_type)
    assert response.status_code == 400
    assert "error" in response.json()
    assert not Message.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("phone", ["12", "not-a-number", "+99912345", "+91 98765"])
def test_invalid_phone_is_a_400_and_nothing_is_stored(post_webhook, phone):
    response = post_webhook(INBOUND, {"from": phone, "to": "57675", "body": "1"})
    assert response.status_code == 400
    assert response.json()["field"] == "from"
    assert not Message.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("phone", ["+919876543210", "919876543210", "09876543210", "9876543210", "+91 98765 43210"])
def test_phone_formats_are_stored_as_e164(post_webhook, phone):
    response = post_webhook(INBOUND, {"from": phone, "to": "57675", "body": "1"})
    assert response.status_code == 200
    assert Message.objects.get().phone == "+919876543210"


@pytest.mark.django_db
def test_two_kilobytes_of_emoji_are_stored_whole(shortcode, post_webhook, django_capture_on_commit_callbacks):
    text = "😀" * 512  # 2 KB of UTF-8
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(INBOUND, {"from": "+919876543210", "to": "57675", "body": text, "id": "e1"})
    assert response.status_code == 200
    inbound = Message.objects.get(direction=Direction.INBOUND)
    assert inbound.body == text
    assert (inbound.encoding, inbound.segments) == ("ucs2", 16)  # 1024 UTF-16 units, 66 per part (pairs kept whole)
    # an unknown code: the shortcode's own reply, never an error
    assert Message.objects.get(direction=Direction.OUTBOUND).body == shortcode.unknown_text


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text,stored",
    [
        ("nul\x00byte", "nulbyte"),
        ("\ud800 lone surrogate", "? lone surrogate"),
        ("RTL \u202e override", "RTL \u202e override"),
        ("zero\u200bwidth", "zero\u200bwidth"),
    ],
)
def test_odd_unicode_is_stored_safely(post_webhook, text, stored):
    body = json.dumps({"from": "+919876543210", "to": "57675", "body": text})
    response = post_webhook(INBOUND, body, content_type="application/json")
    assert response.status_code == 200
    assert Message.objects.get().body == stored


@pytest.mark.django_db
def test_unknown_provider_is_a_404(post_webhook):
    response = post_webhook("/webhooks/nosuch/inbound/", {"from": "+919876543210", "to": "57675", "body": "1"})
    assert response.status_code == 404
    assert "nosuch" in response.json()["error"]


@pytest.mark.django_db
def test_console_provider_receives_no_webhooks(post_webhook):
    response = post_webhook("/webhooks/console/inbound/", {"from": "+919876543210", "to": "57675", "body": "1"})
    assert response.status_code == 404


@pytest.mark.django_db
def test_body_over_the_limit_is_a_413(post_webhook, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    response = post_webhook(INBOUND, {"from": "+919876543210", "to": "57675", "body": "x" * 2000})
    assert response.status_code == 413
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_get_is_not_allowed(client):
    assert client.get(INBOUND).status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Webhook-Secret": "wrong"},
        {"X-Signature": "00" * 32},
    ],
)
def test_wrong_or_missing_secret_is_a_403(post_webhook, headers):
    response = post_webhook(INBOUND, {"from": "+919876543210", "to": "57675", "body": "1"}, sign=False, headers=headers)
    assert response.status_code == 403
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_timestamped_hmac_signature_of_the_raw_body_is_accepted(post_webhook):
    body = json.dumps({"from": "+919876543210", "to": "57675", "body": "1"}).encode()
    headers = generic_signed_headers(body)
    response = post_webhook(INBOUND, body, sign=False, headers=headers)
    assert response.status_code == 200
    # a changed byte fails
    response = post_webhook(INBOUND, body.replace(b'"1"', b'"2"'), sign=False, headers=headers)
    assert response.status_code == 403


@pytest.mark.django_db
def test_hmac_of_the_body_alone_is_no_longer_accepted(post_webhook):
    # given: the earlier scheme, whose captures never expire
    body = json.dumps({"from": "+919876543210", "to": "57675", "body": "1"}).encode()
    signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()

    # when
    response = post_webhook(INBOUND, body, sign=False, headers={"X-Signature": signature})

    # then
    assert response.status_code == 403
    assert "X-Signature-Timestamp" in response.json()["error"]
    assert not Message.objects.exists()


# Id-less inbound: a replayed signed request is not a new message ------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b'{"from": "+919876543210", "to": "57675", "body": "2"}',
        b"From=%2B919876543210&To=57675&Body=2",
    ],
    ids=["json", "form"],
)
def test_replayed_signed_inbound_without_an_id_gets_one_reply(
    shortcode, post_webhook, django_capture_on_commit_callbacks, body
):
    # given: a signed inbound without a provider id, captured
    headers = generic_signed_headers(body)

    # when: it arrives, and again a minute later
    with django_capture_on_commit_callbacks(execute=True):
        first = post_webhook(INBOUND, body, sign=False, headers=headers)
    with freeze_time(datetime.now(UTC) + timedelta(minutes=1)), django_capture_on_commit_callbacks(execute=True):
        replay = post_webhook(INBOUND, body, sign=False, headers=headers)

    # then: both acknowledged as for a duplicate; one stored message, one reply
    assert [first.status_code, replay.status_code] == [200, 200]
    assert Message.objects.filter(direction=Direction.INBOUND).count() == 1
    assert list(Message.objects.filter(direction=Direction.OUTBOUND).values_list("body", flat=True)) == [
        "Balance: Rs 10"
    ]
    inbound_logs = ChannelLog.objects.filter(kind="inbound").order_by("id")
    assert [log.message_id for log in inbound_logs] == [Message.objects.get(direction=Direction.INBOUND).id] * 2


@pytest.mark.django_db
def test_a_signed_inbound_replayed_after_the_content_window_still_gets_one_reply(
    shortcode, post_webhook, django_capture_on_commit_callbacks, settings
):
    # given: a signed inbound without a provider id, captured; its signature is accepted
    # for five minutes either way, longer than the content window
    settings.INBOUND_DEDUPE_SECONDS = 120
    settings.WEBHOOK_SIGNATURE_MAX_AGE_SECONDS = 300
    body = b'{"from": "+919876543210", "to": "57675", "body": "2"}'
    headers = generic_signed_headers(body)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(INBOUND, body, sign=False, headers=headers).status_code == 200

    # when: it is replayed four minutes later, while its signature still passes
    with freeze_time(datetime.now(UTC) + timedelta(minutes=4)), django_capture_on_commit_callbacks(execute=True):
        replay = post_webhook(INBOUND, body, sign=False, headers=headers)

    # then: acknowledged as a duplicate; one message, one reply
    assert replay.status_code == 200
    assert Message.objects.filter(direction=Direction.INBOUND).count() == 1
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 1


@pytest.mark.django_db
def test_the_same_text_signed_anew_is_a_new_message_at_once(
    shortcode, post_webhook, django_capture_on_commit_callbacks
):
    # given: the subscriber sent "2", signed by the aggregator
    body = b'{"from": "+919876543210", "to": "57675", "body": "2"}'
    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(INBOUND, body, sign=False, headers=generic_signed_headers(body)).status_code == 200

    # when: they send "2" again ten seconds later, and the aggregator signs that request anew
    later = int(time.time()) + 10
    with django_capture_on_commit_callbacks(execute=True):
        again = post_webhook(INBOUND, body, sign=False, headers=generic_signed_headers(body, timestamp=later))

    # then: a second message with its own reply
    assert again.status_code == 200
    assert Message.objects.filter(direction=Direction.INBOUND).count() == 2
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("path", [INBOUND, "/sms-handler"])
def test_same_text_without_an_id_after_the_window_is_a_new_message(
    shortcode, post_webhook, django_capture_on_commit_callbacks, settings, path
):
    # given: the subscriber sent "2" without a provider id
    settings.INBOUND_DEDUPE_SECONDS = 120
    body = load_fixture("conversations", "generic", "inbound_seed_form.txt")
    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(path, body).status_code == 200

    # when: the same text, from the same phone, once the window has passed
    with freeze_time(datetime.now(UTC) + timedelta(seconds=121)), django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(path, body)

    # then: a second message and a second reply
    assert response.status_code == 200
    assert Message.objects.filter(direction=Direction.INBOUND).count() == 2
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 2


@pytest.mark.django_db
def test_simulator_repeating_a_text_gets_two_replies(shortcode):
    # when: an operator simulates "2" twice in a row
    call_command("simulate_sms", "--from", "+919876543210", "--to", "57675", "2", "2", stdout=io.StringIO())

    # then: typed at the server, not a replay: both are answered
    assert Message.objects.filter(direction=Direction.INBOUND).count() == 2
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 2


@pytest.mark.django_db
def test_inbound_without_an_id_from_another_phone_or_with_another_text_is_not_a_repeat(
    shortcode, post_webhook, django_capture_on_commit_callbacks
):
    # when: within the window, the same text from another phone, and another text from the first
    with django_capture_on_commit_callbacks(execute=True):
        for sender, text in [("+919876543210", "2"), ("+919876543211", "2"), ("+919876543210", "3")]:
            assert post_webhook(INBOUND, {"from": sender, "to": "57675", "body": text}).status_code == 200

    # then
    assert Message.objects.filter(direction=Direction.INBOUND).count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("debug,expected", [(False, 403), (True, 200)])
def test_unset_secret_fails_closed_unless_debug(post_webhook, settings, debug, expected):
    settings.WEBHOOK_SECRET = ""
    settings.DEBUG = debug
    response = post_webhook(INBOUND, {"from": "+919876543210", "to": "57675", "body": "1"}, sign=False)
    assert response.status_code == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    "allowlist,remote,forwarded,proxies,expected",
    [
        (["10.0.0.0/8"], "10.1.2.3", "", [], 200),
        (["10.0.0.0/8"], "192.168.1.1", "", [], 403),
        # X-Forwarded-For is ignored from an untrusted peer...
        (["203.0.113.7"], "192.168.1.1", "203.0.113.7", [], 403),
        # ...and believed from a trusted proxy, read from the right.
        (["203.0.113.7"], "192.168.1.1", "1.1.1.1, 203.0.113.7", ["192.168.0.0/16"], 200),
        (["203.0.113.7"], "192.168.1.1", "203.0.113.7, 1.1.1.1", ["192.168.0.0/16"], 403),
        ([], "192.168.1.1", "", [], 200),
    ],
)
def test_ip_allowlist(post_webhook, settings, allowlist, remote, forwarded, proxies, expected):
    settings.ALLOWLISTED_IPS = allowlist
    settings.TRUSTED_PROXIES = proxies
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    response = post_webhook(
        INBOUND,
        {"from": "+919876543210", "to": "57675", "body": "1"},
        headers=headers,
        remote=remote,
    )
    assert response.status_code == expected


@pytest.mark.django_db
def test_every_webhook_is_in_the_channel_log_without_the_secret(post_webhook):
    post_webhook(INBOUND, {"from": "+919876543210", "to": "57675", "body": "1"})
    post_webhook(INBOUND, {"from": "x", "to": "57675", "body": "1"})
    logs = list(ChannelLog.objects.order_by("id"))
    assert [(log.kind, log.provider, log.status_code) for log in logs] == [
        ("inbound", "generic", 200),
        ("inbound", "generic", 400),
    ]
    assert logs[0].message_id == Message.objects.get().id
    assert all(WEBHOOK_SECRET not in (log.request + log.response + log.url) for log in logs)

"""The channel log: secrets never stored, refusals stored lean, old rows purged."""

from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from delivery.models import ChannelLog
from delivery.redaction import MASK, redact
from delivery.retention import channel_log_purge
from delivery.tasks import channel_log_purge as channel_log_purge_task


@pytest.mark.parametrize(
    "text,expected",
    [
        ("token=abcd1234secret&x=1", f"token={MASK}&x=1"),
        ("no secret here", "no secret here"),
        ("twice abcd1234secret abcd1234secret", f"twice {MASK} {MASK}"),
    ],
)
def test_redact_masks_every_configured_secret_by_value(settings, text, expected):
    settings.MSG91_WEBHOOK_TOKEN = "abcd1234secret"
    assert redact(text) == expected


@pytest.mark.django_db
def test_rows_older_than_the_retention_are_purged(settings):
    settings.RETENTION_PERIODS = {"channel_log": 7}
    old = ChannelLog.objects.create(kind="send", provider="generic")
    recent = ChannelLog.objects.create(kind="send", provider="generic")
    ChannelLog.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(days=8))
    ChannelLog.objects.filter(id=recent.id).update(created_at=timezone.now() - timedelta(days=6))
    assert channel_log_purge_task.delay().get() == {"deleted": 1}
    assert list(ChannelLog.objects.values_list("id", flat=True)) == [recent.id]
    assert channel_log_purge() == 0


BODY_MARK = "stranger-body-text"


def stranger_post(
    client, path="/webhooks/generic/inbound/?token=guessed-token-1", *, size=60_000, remote="203.0.113.7"
):
    """An unauthenticated POST of `size` bytes, with a header of its own."""
    body = BODY_MARK + "x" * (size - len(BODY_MARK))
    return client.generic(
        "POST", path, body, content_type="text/plain", REMOTE_ADDR=remote, HTTP_X_STRANGER="stranger-header-value"
    )


@pytest.mark.django_db
def test_refused_webhooks_keep_metadata_only_and_few_rows(client, settings, caplog):
    # given
    settings.CHANNEL_LOG_REFUSALS_PER_MINUTE = 10
    # when: 200 unauthenticated 60 KB posts from one address, within one minute
    with freeze_time("2026-03-01 10:00:05"):
        statuses = {stranger_post(client).status_code for _ in range(200)}
    # then
    assert statuses == {403}
    rows = list(ChannelLog.objects.all())
    assert len(rows) == 10
    for row in rows:
        stored = f"{row.url} {row.request} {row.response} {row.error}"
        assert BODY_MARK not in stored and "stranger-header-value" not in stored
        assert "guessed-token-1" not in stored
        assert row.url == f"/webhooks/generic/inbound/?token={MASK}"
        assert row.request == "POST from 203.0.113.7, 60000 bytes"
        assert (row.kind, row.provider, row.status_code) == ("inbound", "generic", 403)
        assert "X-Webhook-Secret" in row.error  # the reason
    assert "200 refused webhooks from 203.0.113.7" in caplog.text


@pytest.mark.django_db
def test_the_refusal_limit_is_per_source_and_per_minute(client, settings):
    settings.CHANNEL_LOG_REFUSALS_PER_MINUTE = 2
    with freeze_time("2026-03-01 10:00:05") as clock:
        for _ in range(5):
            stranger_post(client, size=100)
        stranger_post(client, size=100, remote="198.51.100.9")
        assert ChannelLog.objects.count() == 3
        clock.tick(60)
        stranger_post(client, size=100)
        assert ChannelLog.objects.count() == 4


@pytest.mark.parametrize(
    "path,method,expected",
    [
        ("/webhooks/nosuch/inbound/?token=guessed-token-1", "POST", 404),
        ("/webhooks/msg91/status/?token=guessed-token-1", "POST", 403),
        ("/webhooks/generic/status/?signature=guessed-token-1", "GET", 405),
    ],
)
@pytest.mark.django_db
def test_every_refusal_is_stored_without_body_or_headers(client, path, method, expected):
    # when
    response = client.generic(
        method, path, BODY_MARK, content_type="text/plain", REMOTE_ADDR="203.0.113.7", HTTP_X_STRANGER="stranger-header"
    )
    # then
    assert response.status_code == expected
    row = ChannelLog.objects.get()
    stored = f"{row.url} {row.request} {row.response} {row.error}"
    assert BODY_MARK not in stored and "stranger-header" not in stored and "guessed-token-1" not in stored
    assert row.status_code == expected


@pytest.mark.django_db
def test_a_body_too_large_is_refused_with_metadata_only(client, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1000
    response = stranger_post(client, size=5000)
    assert response.status_code == 413
    row = ChannelLog.objects.get()
    assert row.request == "POST from 203.0.113.7, 5000 bytes"
    assert BODY_MARK not in row.request


@pytest.mark.django_db
def test_an_accepted_webhook_is_stored_whole_with_secrets_masked(settings, post_webhook):
    # given
    settings.MSG91_WEBHOOK_TOKEN = "msg91-token-abcdef"
    # when: an authenticated webhook carrying secrets in its headers and body
    response = post_webhook(
        "/webhooks/generic/inbound/",
        {"from": "+919876543210", "to": "57675", "body": "hello msg91-token-abcdef", "id": "in-1"},
        headers={"Authorization": "Bearer whatever", "X-Other": "kept"},
    )
    # then
    assert response.status_code == 200
    row = ChannelLog.objects.get()
    assert "hello ********" in row.request
    assert "X-Other: kept" in row.request
    assert "Authorization: ********" in row.request
    assert "X-Webhook-Secret: ********" in row.request
    assert "msg91-token-abcdef" not in row.request and "Bearer whatever" not in row.request

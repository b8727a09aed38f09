"""The channel log: secrets never stored, old rows purged."""

from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.channel_log import MASK, channel_log_purge, redact
from delivery.models import ChannelLog
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


@pytest.mark.django_db
def test_no_configured_secret_appears_in_any_stored_row(settings, post_webhook):
    # given: every secret setting has a distinctive value
    secrets = {name: f"SECRET-{name}-value" for name in settings.SECRET_SETTINGS}
    for name, value in secrets.items():
        setattr(settings, name, value)
    # when: webhooks arrive carrying secrets in the URL, headers and body
    post_webhook(
        f"/webhooks/generic/inbound/?token={secrets['GENERIC_WEBHOOK_TOKEN']}",
        {"from": "+919876543210", "to": "57675", "body": secrets["TWILIO_AUTH_TOKEN"]},
        sign=False,
        headers={"X-Webhook-Secret": secrets["WEBHOOK_SECRET"], "Authorization": "Bearer whatever"},
    )
    post_webhook(f"/webhooks/msg91/status/?token={secrets['MSG91_WEBHOOK_TOKEN']}", {"bad": "x"}, sign=False)
    # then
    stored = " ".join(f"{log.url} {log.request} {log.response} {log.error}" for log in ChannelLog.objects.all())
    assert ChannelLog.objects.count() == 2
    for value in secrets.values():
        assert value not in stored
    assert "Bearer whatever" not in stored

"""Every provider and adapter reports in our status words, and the database keeps each direction to its own."""

import json

import pytest
from django.db import IntegrityError, transaction

from delivery.models import Message
from delivery.providers import all_providers
from delivery.providers.adapter import ADAPTERS_DIR, AdapterConfigError, ConfigurableProvider
from delivery.statuses import OUTBOUND_STATUSES, Direction, Status
from delivery.tests.factories import InboundMessageFactory


@pytest.mark.parametrize("provider", all_providers(), ids=lambda provider: provider.slug)
def test_every_provider_maps_reports_onto_outbound_statuses(provider):
    # when
    mapped = {word: provider.map_status(word) for word in provider.STATUS_MAP}

    # then
    not_ours = {word: status for word, status in mapped.items() if not isinstance(status, Status)}
    inbound = {word: status for word, status in mapped.items() if status not in OUTBOUND_STATUSES}
    assert (not_ours, inbound) == ({}, {})


@pytest.mark.parametrize("slug", sorted(path.stem for path in ADAPTERS_DIR.glob("*.json")))
def test_a_shipped_adapter_config_reads_as_status_members(slug):
    provider = ConfigurableProvider(slug, json.loads((ADAPTERS_DIR / f"{slug}.json").read_text()))
    assert provider.STATUS_MAP
    assert all(type(status) is Status for status in provider.STATUS_MAP.values())


@pytest.mark.parametrize("ours", [Status.RECEIVED, Status.HANDLED, Status.RATE_LIMITED, Status.SENDING, Status.REFUSED])
def test_an_adapter_may_not_map_onto_an_inbound_status_or_one_only_we_set(ours):
    config = {
        "inbound": {"from": "from", "to": "to", "body": "body"},
        "status": {"status": "status", "map": {"X": str(ours)}},
        "outbound": {"url": "https://gateway.example/send", "response": {"id_path": "id"}},
    }
    with pytest.raises(AdapterConfigError, match="unknown statuses"):
        ConfigurableProvider("acme", config)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "direction,status",
    [(Direction.INBOUND, Status.QUEUED), (Direction.OUTBOUND, Status.HANDLED), ("io", Status.QUEUED)],
)
def test_the_database_refuses_a_status_of_the_other_direction(direction, status):
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(direction=direction, status=status, shortcode="57675", phone="+919876543210")


@pytest.mark.django_db
def test_support_agents_read_status_labels():
    message = InboundMessageFactory(status=Status.RATE_LIMITED)
    assert (message.get_direction_display(), message.get_status_display()) == ("inbound", "rate-limited")

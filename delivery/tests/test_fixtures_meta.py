"""
Every recorded payload is used by a test, and every status word a provider maps has a
recorded report that carries it, so no branch of a STATUS_MAP goes untested.
"""

from pathlib import Path

import pytest
from django.test import RequestFactory

from delivery.providers import all_providers

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIRS = [ROOT / "conversations" / "tests" / "fixtures", ROOT / "delivery" / "tests" / "fixtures"]
TEST_SOURCES = "\n".join(path.read_text() for path in ROOT.glob("*/tests/test_*.py"))
WEBHOOK_PROVIDERS = [provider for provider in all_providers() if provider.receives_webhooks]


def fixture_files():
    return sorted(path for folder in FIXTURE_DIRS for path in folder.glob("*/*") if path.is_file())


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fixture_is_used_by_a_test(path):
    assert path.name in TEST_SOURCES, f"{path.relative_to(ROOT)} is used by no test"


def status_request(path: Path):
    if path.suffix == ".json":
        return RequestFactory().post("/status/", path.read_bytes(), content_type="application/json")
    return RequestFactory().post("/status/", path.read_bytes(), content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("provider", WEBHOOK_PROVIDERS, ids=lambda p: p.slug)
def test_every_status_word_has_a_recorded_report(provider):
    # given
    folder = ROOT / "delivery" / "tests" / "fixtures" / provider.slug
    covered = set()
    # when
    for path in sorted(folder.glob("status_*")):
        covered |= {update.provider_status.strip().lower() for update in provider.parse_status(status_request(path))}
    # then
    missing = set(provider.STATUS_MAP) - covered
    assert not missing, f"{provider.slug}: no status fixture for {sorted(missing)}"

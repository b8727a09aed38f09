"""
Every recorded payload is used by a test. That every status word a provider maps has a
recorded report is the provider contract's to check (test_provider_contract.py).
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIRS = [ROOT / "conversations" / "tests" / "fixtures", ROOT / "delivery" / "tests" / "fixtures"]
TEST_SOURCES = "\n".join(path.read_text() for path in ROOT.glob("*/tests/test_*.py"))


def fixture_files():
    return sorted(path for folder in FIXTURE_DIRS for path in folder.glob("*/*") if path.is_file())


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fixture_is_used_by_a_test(path):
    assert path.name in TEST_SOURCES, f"{path.relative_to(ROOT)} is used by no test"

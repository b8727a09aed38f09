"""periodic_run, the shape both sweeps share: backlog wait, lock, batch, counts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.sweeps import inbound_sweep
from delivery.sweeps import Batch, outbox_sweep, periodic_run
from delivery.tests.factories import InboundMessageFactory, OutboundMessageFactory
from delivery.throttle import lock_acquire, lock_release


def test_a_run_acts_on_its_batch_and_counts():
    # given
    acted = []

    # when
    result = periodic_run(
        "test",
        batch=3,
        select=lambda now, limit: Batch(ids=list(range(1, limit + 1)), counts={"reset": 1}),
        act=lambda row_id: acted.append(row_id) or row_id != 2,
    )

    # then: every row was acted on; the count is of the rows `act` took
    assert acted == [1, 2, 3]
    assert result == {"reset": 1, "requeued": 2}


def test_select_sees_the_time_of_the_run():
    seen = []
    at = timezone.now() - timedelta(days=1)

    periodic_run(
        "test", batch=10, select=lambda now, limit: seen.append((now, limit)) or Batch(ids=[]), act=bool, now=at
    )

    assert seen == [(at, 10)]


def test_an_overlapping_run_is_skipped():
    assert lock_acquire("sweep:test", timeout=30)
    try:
        result = periodic_run("test", batch=10, select=pytest.fail, act=pytest.fail)
    finally:
        lock_release("sweep:test")

    assert result == {"skipped": True}


def test_the_lock_is_released_after_a_run_even_one_that_fails():
    def select(now, limit):
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        periodic_run("test", batch=10, select=select, act=bool)

    assert periodic_run("test", batch=10, select=lambda now, limit: Batch(ids=[]), act=bool) == {"requeued": 0}


def test_a_run_waits_while_the_broker_backlog_is_over_the_limit(settings):
    # given: a limit the (empty, in-process) queue is already over
    settings.SWEEP_MAX_BACKLOG = -1

    # when
    result = periodic_run("test", batch=10, select=pytest.fail, act=pytest.fail)

    # then
    assert result == {"skipped": True, "backlog": 0}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sweep,lock,factory",
    [(inbound_sweep, "sweep:inbound", InboundMessageFactory), (outbox_sweep, "sweep:outbox", OutboundMessageFactory)],
    ids=["inbound", "outbox"],
)
def test_both_sweeps_run_on_it(sweep, lock, factory, settings):
    # given: a row the broker lost, and another run in progress
    factory(provider="console")
    later = timezone.now() + timedelta(minutes=5)
    assert lock_acquire(lock, timeout=30)
    try:
        # then
        assert sweep(now=later) == {"skipped": True}
    finally:
        lock_release(lock)
    settings.SWEEP_MAX_BACKLOG = -1
    assert sweep(now=later) == {"skipped": True, "backlog": 0}
    settings.SWEEP_MAX_BACKLOG = 500
    assert sweep(now=later)["requeued"] == 1

"""
The inbound dispatcher: queues the handling of stored inbound SMS, many to a task.

The webhook stores an inbound row (`received`, no `queued_at`) and answers; it never
waits on the broker (conversations/receiving.py). The dispatcher claims such rows with
FOR UPDATE SKIP LOCKED, marks them `queued_at`, and publishes one handle_inbound_batch
task per INBOUND_BATCH_SIZE of them: one broker message and one task's overhead for many
SMS. Under light load a batch is one message, so nothing waits for a batch to fill.

Lifecycle of a row: received, queued_at NULL -> claimed (queued_at set, committed) ->
published -> handled. A publish that fails (broker down) gives its rows back (queued_at
NULL) for the next round. A dispatcher that dies between the claim and the publish leaves
rows `received` with queued_at set: the inbound sweep queues them again after
OUTBOX_SWEEP_AFTER_SECONDS, as it does for a task the broker lost. Handling is
idempotent (the `received` guard under the row lock), so a row queued twice gets one reply.

It runs as its own process (`manage.py inbound_dispatch`: docker compose's `dispatcher`,
the test session's worker fixture, bench/run.sh), one or several side by side: SKIP
LOCKED keeps two from claiming one row. Without a broker (tasks run in process) there
is nothing to dispatch: the webhook handles its message itself.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from conversations.receiving import HANDLE_INBOUND_BATCH_TASK
from delivery.models import Message
from delivery.queueing import publish
from delivery.statuses import Direction, Status

logger = logging.getLogger(__name__)


def inbound_dispatch(*, limit: int | None = None, batch_size: int | None = None) -> dict:
    """
    One round: claim up to `limit` stored, unqueued inbound messages (oldest first), publish
    them `batch_size` to a task. {"queued": n, "given_back": k}: k rows could not be
    published (the broker is down) and wait for a later round.
    """
    limit = limit or settings.INBOUND_DISPATCH_CLAIM
    batch_size = batch_size or settings.INBOUND_BATCH_SIZE
    with transaction.atomic():
        claimed = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(direction=Direction.INBOUND, status=Status.RECEIVED, queued_at__isnull=True)
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        if claimed:
            Message.objects.filter(id__in=claimed).update(queued_at=timezone.now())
    queued = 0
    for start in range(0, len(claimed), batch_size):
        batch = claimed[start : start + batch_size]
        if not publish(HANDLE_INBOUND_BATCH_TASK, batch):
            # The broker is down: these and the rest wait for a later round.
            Message.objects.filter(id__in=claimed[start:], status=Status.RECEIVED).update(queued_at=None)
            break
        queued += len(batch)
    return {"queued": queued, "given_back": len(claimed) - queued}


class InboundDispatcher:
    """
    `inbound_dispatch` in a loop until stopped: again at once after a full round; after a
    short one, after a pause that starts at INBOUND_DISPATCH_IDLE_SECONDS and doubles
    with each empty round up to IDLE_MAX_SECONDS (an idle dispatcher costs a query
    every quarter second, and the first SMS after a quiet spell waits at most that
    long); after BROKEN_PAUSE_SECONDS when the broker or the database fails.
    """

    BROKEN_PAUSE_SECONDS = 1.0
    IDLE_MAX_SECONDS = 0.25

    def __init__(self):
        self._stop = threading.Event()

    def run(self) -> None:
        idle = settings.INBOUND_DISPATCH_IDLE_SECONDS
        while not self._stop.is_set():
            try:
                round_ = inbound_dispatch()
            except Exception:
                logger.exception("inbound dispatch round failed; trying again")
                close_old_connections()
                self._stop.wait(self.BROKEN_PAUSE_SECONDS)
                continue
            if round_["given_back"]:
                self._stop.wait(self.BROKEN_PAUSE_SECONDS)
            elif round_["queued"] == 0:
                self._stop.wait(idle)
                idle = min(idle * 2, self.IDLE_MAX_SECONDS)
            else:
                idle = settings.INBOUND_DISPATCH_IDLE_SECONDS
                if round_["queued"] < settings.INBOUND_DISPATCH_CLAIM:
                    self._stop.wait(idle)
        close_old_connections()

    def stop(self) -> None:
        self._stop.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="inbound-dispatcher", daemon=True)
        thread.start()
        return thread

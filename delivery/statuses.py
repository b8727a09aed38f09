"""
The words a message's life is told in: its direction and its status. Model-free, so
models, services, providers and adapters all speak the same words.

Inbound:   received > handled | rate_limited
Outbound:  queued > sending > sent > delivered
              |         |        '--> undelivered | rejected
              |         '--> failed
              '--> refused (suppressed number, no DLT template: never sent)

An outbound status only moves forward (STATUS_RANK); every final status shares the top
rank, so nothing moves a message once it is final.
"""

from enum import StrEnum


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"

    @property
    def label(self) -> str:
        return {"in": "inbound", "out": "outbound"}[self.value]


class Status(StrEnum):
    RECEIVED = "received"  # inbound stored, not handled yet
    HANDLED = "handled"  # inbound processed; any reply is queued
    RATE_LIMITED = "rate_limited"  # inbound over the sender's limit: stored, not answered
    QUEUED = "queued"  # outbound stored, waiting for the deliver task
    SENDING = "sending"  # a deliver task has claimed it and is calling the provider
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"  # the handset has it (final)
    UNDELIVERED = "undelivered"  # the carrier gave up (final)
    REJECTED = "rejected"  # refused by the provider or carrier (final)
    FAILED = "failed"  # never handed over, or gave up retrying (final)
    REFUSED = "refused"  # we would not send it: opted out, no DLT template (final)

    @property
    def label(self) -> str:
        return self.value.replace("_", "-")


INBOUND_STATUSES = (Status.RECEIVED, Status.HANDLED, Status.RATE_LIMITED)
OUTBOUND_STATUSES = (
    Status.QUEUED,
    Status.SENDING,
    Status.SENT,
    Status.DELIVERED,
    Status.UNDELIVERED,
    Status.REJECTED,
    Status.FAILED,
    Status.REFUSED,
)

# Outbound statuses in the order they may be reached; every final status shares the top rank.
STATUS_RANK = {
    Status.QUEUED: 0,
    Status.SENDING: 1,
    Status.SENT: 2,
    Status.DELIVERED: 3,
    Status.UNDELIVERED: 3,
    Status.REJECTED: 3,
    Status.FAILED: 3,
    Status.REFUSED: 3,
}
FINAL_STATUSES = frozenset(status for status, rank in STATUS_RANK.items() if rank == 3)
# Rows a sweep looks at: not yet handled or not yet handed over.
PENDING_STATUSES = (Status.RECEIVED, Status.QUEUED, Status.SENDING)

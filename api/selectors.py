"""What an API client reads back: its messages, filtered, and one message's status history."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from api.models import ApiClient
from api.permissions import client_messages
from delivery.models import DeliveryReport, Message
from delivery.statuses import Direction, Status


def client_message_list(*, client: ApiClient, filters: dict[str, Any]) -> QuerySet[Message]:
    """The client's outbound messages, narrowed by phone, status, reference, batch and creation time."""
    messages = client_messages(client).filter(direction=Direction.OUTBOUND)
    if "phone" in filters:
        messages = messages.filter(phone=filters["phone"])
    if "status" in filters:
        messages = messages.filter(status=filters["status"])
    if "reference" in filters:
        messages = messages.filter(reference=filters["reference"])
    if "batch" in filters:
        messages = messages.filter(batch_recipient__batch_id=filters["batch"])
    if "created_after" in filters:
        messages = messages.filter(created_at__gte=filters["created_after"])
    if "created_before" in filters:
        messages = messages.filter(created_at__lt=filters["created_before"])
    return messages


def client_message_get(*, client: ApiClient, message_id: int) -> Message | None:
    """One of the client's messages; None for another's, so it cannot tell those exist."""
    return client_messages(client).filter(id=message_id, direction=Direction.OUTBOUND).first()


@dataclass(frozen=True)
class StatusChange:
    status: str
    at: datetime
    source: str  # "smsgate" or "report"
    provider_status: str = ""
    error_code: str = ""
    applied: bool = True


def message_history(message: Message) -> list[StatusChange]:
    """
    How the message got where it is, oldest first: stored, handed to the provider, each
    delivery report (applied or not), and a failure or refusal of ours.
    """
    # A refusal of message_send means the message was never queued: its history starts refused.
    refused_at_once = message.status == Status.REFUSED and message.sent_at is None and message.attempts == 0
    first = Status.REFUSED if refused_at_once else Status.QUEUED
    changes = [
        StatusChange(
            str(first), message.created_at, "smsgate", error_code=message.error_code if refused_at_once else ""
        )
    ]
    if message.sent_at is not None:
        changes.append(StatusChange(str(Status.SENT), message.sent_at, "smsgate"))
    reports = DeliveryReport.objects.filter(message=message).order_by("received_at", "id")
    for report in reports:
        changes.append(
            StatusChange(
                report.status or "unknown",
                report.received_at,
                "report",
                provider_status=report.provider_status,
                error_code=report.error_code,
                applied=report.applied,
            )
        )
    ours_final = message.status in (Status.FAILED, Status.REFUSED) and first != message.status
    if ours_final and not any(change.applied and change.status == message.status for change in changes[1:]):
        changes.append(StatusChange(str(message.status), message.updated_at, "smsgate", error_code=message.error_code))
    return changes

"""
Delivery reports and the forward-only outbound status.

A report is stored as it came (raw payload kept, secrets masked) and moves its message
forward with message_status_advance; one that arrives before the send stored the
provider's id waits unmatched and is applied by delivery_reports_apply_pending.
"""

import logging
import uuid
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from delivery.correlation import message_correlation_id, message_event
from delivery.events import event
from delivery.models import DeliveryReport, Message
from delivery.providers import UnknownProvider, get_provider
from delivery.providers.base import StatusUpdate
from delivery.redaction import redact, redact_payload
from delivery.statuses import STATUS_RANK, Direction, Status
from delivery.suppression import carrier_opt_out_record
from delivery.text import clean_payload, clean_text

logger = logging.getLogger(__name__)


def message_status_advance(
    *,
    message_id: int,
    new_status: str,
    at: datetime,
    error_code: str = "",
    error_message: str = "",
) -> bool:
    """
    Move an outbound message to `new_status` if that is a step forward; True when it moved.

    One conditional UPDATE: a late `sent` after `delivered`, a duplicate report, or a
    report for a message already final match no row and change nothing.
    """
    rank = STATUS_RANK[new_status]
    lower = [status for status, r in STATUS_RANK.items() if r < rank]
    fields = {"status": new_status, "updated_at": timezone.now()}
    if new_status == Status.SENT:
        fields["sent_at"] = at
    if new_status == Status.DELIVERED:
        fields["delivered_at"] = at
    if error_code or error_message:
        fields["error_code"] = error_code[:50]
        fields["error_message"] = error_message
    return bool(Message.objects.filter(id=message_id, direction=Direction.OUTBOUND, status__in=lower).update(**fields))


def message_fail(*, message_id: int, code: str, reason: str) -> bool:
    """Mark an outbound message `failed` unless it already reached a final status."""
    return message_status_advance(
        message_id=message_id,
        new_status=Status.FAILED,
        at=timezone.now(),
        error_code=code,
        error_message=reason,
    )


@transaction.atomic
def delivery_report_record(*, provider: str, update: StatusUpdate) -> DeliveryReport:
    """
    Store a delivery report and move its message's status forward.

    A report is matched by our reference (`?ref=`) first, then by the provider's id. One
    that matches nothing yet is kept, and applied when the send records that id. A
    status word the provider map does not know is kept and logged, never an error.
    """
    message = _report_message(provider, update)
    # A report may echo what we sent it (a callback URL with its token): stored masked.
    error_message = redact(update.error_message)
    if update.status is None and not _is_ignored_status(provider, update.provider_status):
        logger.warning("%s report with unknown status %r kept unapplied", provider, update.provider_status)
    applied = False
    if message is not None and update.status is not None:
        applied = message_status_advance(
            message_id=message.id,
            new_status=update.status,
            at=update.at or timezone.now(),
            error_code=update.error_code,
            error_message=error_message,
        )
    if message is not None:
        _report_opt_out_record(
            provider=provider,
            message_id=message.id,
            error_code=update.error_code,
            provider_status=update.provider_status,
        )
    reference = None
    if update.reference:
        try:
            reference = uuid.UUID(update.reference)
        except ValueError:
            reference = None
    report = DeliveryReport.objects.create(
        message=message,
        provider=provider,
        provider_message_id=clean_text(update.provider_message_id)[:100],
        reference=reference,
        status=update.status or "",
        provider_status=clean_text(update.provider_status)[:50],
        error_code=clean_text(update.error_code)[:50],
        error_message=clean_text(error_message),
        applied=applied,
        raw_payload=clean_payload(redact_payload(update.raw)),
    )
    event(
        "report.recorded",
        provider=provider,
        status=update.status or "unknown",
        applied=applied,
        message_id=report.message_id,
        correlation_id=message_correlation_id(message) if message is not None else "",
        **({"callback": True} if message is not None and message.callback_url else {}),
    )
    return report


def _report_message(provider: str, update: StatusUpdate) -> Message | None:
    """
    The outbound message a report on `provider`'s webhook is about: only one sent through
    that provider, found by our ref, else by the provider's id. A ref naming another
    provider's message matches nothing: that webhook's credential does not reach it.
    """
    outbound = Message.objects.filter(direction=Direction.OUTBOUND)
    if update.reference:
        try:
            message = outbound.filter(uuid=uuid.UUID(update.reference)).first()
        except ValueError:
            logger.warning("%s report with a malformed ref %r", provider, update.reference)
        else:
            if message is not None and message.provider != provider:
                logger.warning(
                    "%s report names %s's message %s: kept unmatched", provider, message.provider, message.id
                )
                return None
            if message is not None:
                return message
    if update.provider_message_id:
        return outbound.filter(provider=provider, provider_message_id=update.provider_message_id).first()
    return None


def _is_ignored_status(provider: str, provider_status: str) -> bool:
    """A word the provider declares known but meaningless for us (its IGNORED set): stored, not warned about."""
    try:
        return (provider_status or "").strip().lower() in get_provider(provider).IGNORED
    except UnknownProvider:
        return False


def delivery_reports_apply_pending(*, message_id: int, provider: str, provider_message_id: str) -> int:
    """
    Apply reports that arrived before the message's provider id was known; returns how many moved it.

    The rule of `_report_message` holds here too: only reports received on the message's
    own provider's webhook, and none whose ref names another message.
    """
    message = (
        Message.objects.filter(id=message_id, direction=Direction.OUTBOUND, provider=provider)
        .only("uuid", "provider", "shortcode", "phone", "callback_url", "in_reply_to_id")
        .first()
    )
    if message is None:
        return 0
    pending = (
        DeliveryReport.objects.filter(message__isnull=True, provider=provider, provider_message_id=provider_message_id)
        .filter(Q(reference__isnull=True) | Q(reference=message.uuid))
        .order_by("received_at", "id")
    )
    moved = 0
    for report in pending:
        report.message_id = message_id
        if report.status:
            report.applied = message_status_advance(
                message_id=message_id,
                new_status=report.status,
                at=report.received_at,
                error_code=report.error_code,
                error_message=report.error_message,
            )
            moved += report.applied
            if report.applied:
                message_event("report.applied", message, status=report.status)
        _report_opt_out_record(
            provider=provider,
            message_id=message_id,
            error_code=report.error_code,
            provider_status=report.provider_status,
        )
        report.save(update_fields=["message", "applied"])
    return moved


def _report_opt_out_record(*, provider: str, message_id: int, error_code: str, provider_status: str) -> None:
    """A delivery report saying the number opted out at the carrier: see carrier_opt_out_record."""
    try:
        gateway = get_provider(provider)
    except UnknownProvider:
        return
    if not gateway.reports_opt_out(error_code=error_code, provider_status=provider_status):
        return
    message = Message.objects.filter(id=message_id).only("phone", "shortcode").first()
    if message is not None:
        carrier_opt_out_record(
            provider=gateway, message=message, error_code=error_code, provider_status=provider_status
        )

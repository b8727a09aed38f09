"""Outbound messages and delivery reports: the business logic behind send, deliver and the status webhook."""

import logging
import random
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from delivery.channel_log import channel_log_exchanges
from delivery.models import DeliveryReport, Message, Suppression
from delivery.providers import UnknownProvider, get_provider
from delivery.providers.base import OutboundSMS, SendError, StatusUpdate
from delivery.queueing import enqueue_on_commit, publish, sweep_should_wait
from delivery.segments import segment_info, truncate_to_segments
from delivery.text import clean_payload, clean_text
from delivery.throttle import lock_acquire, lock_release, token_bucket_take
from templates.services import promotional_window_next_start, template_resolve

logger = logging.getLogger(__name__)

Status = Message.Status

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
FINAL_STATUSES = frozenset(s for s, rank in STATUS_RANK.items() if rank == 3)


class RetryLater(Exception):
    """Not now: a transient provider failure or the shortcode's throughput is spent."""

    def __init__(self, countdown: float, reason: str):
        super().__init__(reason)
        self.countdown = countdown


def callback_url(*, provider: str, reference: uuid.UUID | str) -> str | None:
    """Our status webhook for one message; `ref` finds the message even before the provider's id is stored."""
    if not settings.PUBLIC_BASE_URL:
        return None
    url = f"{settings.PUBLIC_BASE_URL}/webhooks/{provider}/status/?ref={reference}"
    # Providers that sign nothing prove themselves with the token in the URL we give them.
    token = getattr(settings, f"{provider.upper()}_WEBHOOK_TOKEN", "")
    return f"{url}&token={token}" if token else url


def suppression_get(*, phone: str, shortcode: str) -> Suppression | None:
    """The opt-out that stops sends from `shortcode` to `phone`: its own, or an all-shortcodes one."""
    return Suppression.objects.filter(phone=phone, shortcode__in=[shortcode, ""]).order_by("-shortcode").first()


# No savepoint of its own: called inside inbound handling, whose transaction it joins.
@transaction.atomic(savepoint=False)
def message_send(
    *,
    shortcode: str,
    phone: str,
    body: str,
    provider: str,
    provider_options: dict | None = None,
    in_reply_to: Message | None = None,
    segment_limit: int | None = None,
    ignore_suppression: bool = False,
    dlt_header: str | None = None,
) -> Message:
    """
    Store an outbound message and queue its delivery once the transaction commits.

    A text longer than `segment_limit` segments is cut at a segment boundary with a
    marker (and logged). A number on the suppression list gets nothing: the message is
    stored `refused` with the reason and never queued; `ignore_suppression` is for the
    one confirmation an opt-out itself sends.

    With `dlt_header` (a DLT-bound shortcode's sender ID) the text must match an approved
    template for that header: the template, entity and category IDs are stored and travel
    with the send; a text that matches none is stored `failed` (`dlt_no_template`, with
    the matcher's why) and never sent. A promotional match outside 09:00-21:00 IST is
    held until the window opens (`send_after`); the outbox sweep sends it then.
    """
    text = clean_text(body)
    if segment_limit:
        text, was_cut = truncate_to_segments(text, segment_limit)
        if was_cut:
            logger.warning("reply to %s cut to %d segments (%d characters)", phone, segment_limit, len(body))
    info = segment_info(text)
    message = Message(
        direction=Message.Direction.OUTBOUND,
        status=Status.QUEUED,
        shortcode=shortcode,
        phone=phone,
        body=text,
        encoding=info.encoding,
        segments=info.segments,
        provider=provider,
        provider_options=provider_options or {},
        in_reply_to=in_reply_to,
    )
    suppression = None if ignore_suppression else suppression_get(phone=phone, shortcode=shortcode)
    if suppression is not None:
        message.status = Status.REFUSED
        message.error_code = "opted_out"
        message.error_message = f"{phone} opted out ({suppression.keyword or suppression.source}) on " + (
            f"{suppression.created_at:%Y-%m-%d %H:%M} UTC"
        )
        message.save()
        logger.info("send to %s refused: opted out", phone)
        return message
    if dlt_header is not None and not _dlt_stamp(message, dlt_header):
        message.save()
        return message
    message.save()
    if message.send_after is None:
        from delivery.tasks import deliver as deliver_task

        enqueue_on_commit(deliver_task, message.id)
    return message


def _dlt_stamp(message: Message, header: str) -> bool:
    """Resolve the message's DLT template; False (message marked failed) when none matches."""
    resolution = template_resolve(header=header, text=message.body)
    if not resolution.matched:
        message.status = Status.FAILED
        message.error_code = "dlt_no_template"
        message.error_message = resolution.why
        logger.warning("reply to %s refused, no DLT template for header %s: %s", message.phone, header, resolution.why)
        return False
    message.dlt_template_id = resolution.template_id
    message.dlt_entity_id = resolution.entity_id
    message.dlt_category = resolution.category
    if resolution.promotional:
        message.send_after = promotional_window_next_start(now=timezone.now())
    return True


def send_options(message: Message) -> dict:
    """The shortcode's provider options, plus the DLT IDs the provider must pass on."""
    options = dict(message.provider_options)
    if message.dlt_template_id:
        options.update(
            dlt_template_id=message.dlt_template_id,
            dlt_entity_id=message.dlt_entity_id,
            dlt_category=message.dlt_category,
        )
    return options


def retry_countdown(attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter (about 2 s, 4 s, 8 s ... capped at 5 min); a provider's Retry-After wins."""
    if retry_after is not None:
        return min(retry_after, 3600.0)
    base = min(2.0**attempts, 300.0)
    return base + random.uniform(0, base / 2)


def message_deliver(*, message_id: int, final_attempt: bool = False) -> str:
    """
    Hand a queued message to its provider, once.

    The `queued -> sending` claim is a conditional update, so a task that runs twice
    (redelivered by the broker, or re-queued by the sweep) calls the provider once.
    A transient failure puts the message back to `queued`, records the attempt and
    raises RetryLater, until settings.DELIVER_MAX_ATTEMPTS (or `final_attempt`), when
    it is marked `failed` with the reason. A permanent failure fails at once.
    """
    now = timezone.now()
    claimed = Message.objects.filter(
        Q(send_after__isnull=True) | Q(send_after__lte=now), id=message_id, direction="out", status=Status.QUEUED
    ).update(status=Status.SENDING, attempts=F("attempts") + 1, next_attempt_at=None, updated_at=now)
    if not claimed:
        return "skipped"
    message = Message.objects.get(id=message_id)
    max_mps = message.provider_options.get("max_mps")
    if max_mps:
        wait = token_bucket_take(f"mps:{message.shortcode}", rate=float(max_mps))
        if wait:
            # Over the shortcode's throughput: back in the queue, not dropped, and not an attempt.
            Message.objects.filter(id=message_id, status=Status.SENDING).update(
                status=Status.QUEUED, attempts=F("attempts") - 1, updated_at=timezone.now()
            )
            raise RetryLater(wait, "throttled")
    provider = get_provider(message.provider)
    outbound = OutboundSMS(
        reference=str(message.uuid),
        to=message.phone,
        sender=message.provider_options.get("sender") or message.shortcode,
        body=message.body,
        callback_url=callback_url(provider=message.provider, reference=message.uuid),
        options=send_options(message),
    )
    try:
        result = provider.send(outbound)
    except SendError as exc:
        channel_log_exchanges(provider=message.provider, message_id=message_id, exchanges=exc.exchanges)
        final = final_attempt or message.attempts >= settings.DELIVER_MAX_ATTEMPTS
        if exc.transient and not final:
            countdown = retry_countdown(message.attempts, exc.retry_after)
            Message.objects.filter(id=message_id, status=Status.SENDING).update(
                status=Status.QUEUED,
                error_code=exc.code[:50],
                error_message=str(exc),
                next_attempt_at=timezone.now() + timedelta(seconds=countdown),
                updated_at=timezone.now(),
            )
            raise RetryLater(countdown, str(exc)) from exc
        reason = str(exc) if not exc.transient else f"gave up after {message.attempts} attempts: {exc}"
        message_fail(message_id=message_id, code=exc.code or "send_failed", reason=reason)
        return "failed"
    provider_message_id = result.provider_message_id[:100]
    now = timezone.now()
    not_yet_sent = Q(status__in=[Status.QUEUED, Status.SENDING])
    with transaction.atomic():
        # One UPDATE: keep the id even when a report already moved the message past `sent`.
        Message.objects.filter(id=message_id).update(
            provider_message_id=Coalesce("provider_message_id", Value(provider_message_id)),
            status=Case(When(not_yet_sent, then=Value(Status.SENT)), default=F("status")),
            sent_at=Case(When(not_yet_sent, then=Value(now)), default=F("sent_at")),
            updated_at=now,
        )
        channel_log_exchanges(provider=message.provider, message_id=message_id, exchanges=result.exchanges)
        delivery_reports_apply_pending(
            message_id=message_id, provider=message.provider, provider_message_id=provider_message_id
        )
    return "sent"


def message_fail(*, message_id: int, code: str, reason: str) -> bool:
    """Mark an outbound message `failed` unless it already reached a final status."""
    return message_status_advance(
        message_id=message_id,
        new_status=Status.FAILED,
        at=timezone.now(),
        error_code=code,
        error_message=reason,
    )


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
    return bool(Message.objects.filter(id=message_id, direction="out", status__in=lower).update(**fields))


def _report_message(provider: str, update: StatusUpdate) -> Message | None:
    outbound = Message.objects.filter(direction="out")
    if update.reference:
        try:
            message = outbound.filter(uuid=uuid.UUID(update.reference)).first()
        except ValueError:
            logger.warning("%s report with a malformed ref %r", provider, update.reference)
        else:
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


@transaction.atomic
def delivery_report_record(*, provider: str, update: StatusUpdate) -> DeliveryReport:
    """
    Store a delivery report and move its message's status forward.

    A report is matched by our reference (`?ref=`) first, then by the provider's id. One
    that matches nothing yet is kept, and applied when the send records that id. A
    status word the provider map does not know is kept and logged, never an error.
    """
    message = _report_message(provider, update)
    if update.status is None and not _is_ignored_status(provider, update.provider_status):
        logger.warning("%s report with unknown status %r kept unapplied", provider, update.provider_status)
    applied = False
    if message is not None and update.status is not None:
        applied = message_status_advance(
            message_id=message.id,
            new_status=update.status,
            at=update.at or timezone.now(),
            error_code=update.error_code,
            error_message=update.error_message,
        )
    reference = None
    if update.reference:
        try:
            reference = uuid.UUID(update.reference)
        except ValueError:
            reference = None
    return DeliveryReport.objects.create(
        message=message,
        provider=provider,
        provider_message_id=clean_text(update.provider_message_id)[:100],
        reference=reference,
        status=update.status or "",
        provider_status=clean_text(update.provider_status)[:50],
        error_code=clean_text(update.error_code)[:50],
        error_message=clean_text(update.error_message),
        applied=applied,
        raw_payload=clean_payload(update.raw),
    )


def delivery_reports_apply_pending(*, message_id: int, provider: str, provider_message_id: str) -> int:
    """Apply reports that arrived before the message's provider id was known; returns how many moved it."""
    pending = DeliveryReport.objects.filter(
        message__isnull=True, provider=provider, provider_message_id=provider_message_id
    ).order_by("received_at", "id")
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
        report.save(update_fields=["message", "applied"])
    return moved


def messages_requeue(*, message_ids: list[int]) -> int:
    """Send failed (or stuck queued) outbound messages again; returns how many were queued."""
    from delivery.tasks import deliver as deliver_task

    requeued = 0
    for message_id in message_ids:
        with transaction.atomic():
            moved = Message.objects.filter(
                id=message_id,
                direction="out",
                status__in=[Status.FAILED, Status.QUEUED],
            ).update(
                status=Status.QUEUED,
                error_code="",
                error_message="",
                updated_at=timezone.now(),
            )
            if moved:
                enqueue_on_commit(deliver_task, message_id)
                requeued += 1
    return requeued


def outbox_sweep(*, now: datetime | None = None, limit: int = 1000) -> dict:
    """
    Queue again what the broker lost: outbound messages still `queued` after
    settings.OUTBOX_SWEEP_AFTER_SECONDS (or whose scheduled time has come), and
    `sending` ones whose worker died mid-call. Runs under a lock; an overlapping run
    returns {"skipped": True}.
    """
    from delivery.tasks import deliver as deliver_task

    if (backlog := sweep_should_wait()) is not None:
        return {"skipped": True, "backlog": backlog}
    if not lock_acquire("sweep:outbox", timeout=60):
        return {"skipped": True}
    try:
        now = now or timezone.now()
        settled = now - timedelta(seconds=settings.OUTBOX_SWEEP_AFTER_SECONDS)
        stale_sending = Message.objects.filter(
            direction="out",
            status=Status.SENDING,
            updated_at__lt=now - timedelta(seconds=settings.SENDING_STALE_AFTER_SECONDS),
        )
        reset = list(stale_sending.values_list("id", flat=True)[:limit])
        Message.objects.filter(id__in=reset, status=Status.SENDING).update(status=Status.QUEUED)
        due = reset + list(
            Message.objects.filter(direction="out", status=Status.QUEUED, updated_at__lt=settled)
            .filter(Q(send_after__isnull=True) | Q(send_after__lte=now))
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=settled))
            .exclude(id__in=reset)
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        Message.objects.filter(id__in=due).update(updated_at=now)
        requeued = sum(publish(deliver_task, message_id) for message_id in due)
        return {"requeued": requeued, "reset": len(reset)}
    finally:
        lock_release("sweep:outbox")


def suppression_add(*, phone: str, shortcode: str, keyword: str, source: str = "sms", message=None) -> Suppression:
    """Put a number on the suppression list for one shortcode ("" = all); opting out twice keeps the first row."""
    suppression, _ = Suppression.objects.get_or_create(
        phone=phone, shortcode=shortcode, defaults={"keyword": keyword, "source": source, "message": message}
    )
    return suppression


def suppression_remove(*, phone: str, shortcode: str) -> int:
    """Opt a number back in on a shortcode, lifting an all-shortcodes opt-out too."""
    deleted, _ = Suppression.objects.filter(phone=phone, shortcode__in=[shortcode, ""]).delete()
    return deleted

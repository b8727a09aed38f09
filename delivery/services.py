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
from delivery.providers.base import OutboundSMS, Provider, SendError, StatusUpdate
from delivery.queueing import enqueue_on_commit, publish, sweep_should_wait
from delivery.redaction import redact, redact_payload
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

# The provider_options key where message_send leaves what message_deliver checks again:
# {"dlt_header": the DLT header or None, "ignore_suppression": bool}. Never sent to a provider.
SEND_RULES = "send_rules"
# Error codes of the sends we refuse ourselves (stored `refused`, never sent).
REFUSAL_CODES = ("opted_out", "dlt_no_template")


class RetryLater(Exception):
    """Not now: a transient provider failure or the shortcode's throughput is spent."""

    def __init__(self, countdown: float, reason: str):
        super().__init__(reason)
        self.countdown = countdown


def callback_url(*, provider: str, reference: uuid.UUID | str) -> str | None:
    """
    Our status webhook for one message; `ref` finds the message even before the provider's id
    is stored. None without PUBLIC_BASE_URL: the provider then reports only where its account
    points, if anywhere.

    A provider that signs nothing reads <SLUG>_WEBHOOK_TOKEN (and declares it among its
    SECRET_SETTINGS): its webhook checks it as `?token=`, so the URL alone is enough. Providers
    that sign, and the generic one (it proves itself with WEBHOOK_SECRET), get no token: their
    webhook would ignore it and the aggregator would hold a secret for nothing.
    """
    if not settings.PUBLIC_BASE_URL:
        return None
    url = f"{settings.PUBLIC_BASE_URL}/webhooks/{provider}/status/?ref={reference}"
    token_setting = f"{provider.upper()}_WEBHOOK_TOKEN"
    try:
        reads_token = token_setting in get_provider(provider).SECRET_SETTINGS
    except UnknownProvider:
        reads_token = False
    token = getattr(settings, token_setting, "") if reads_token else ""
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
    one confirmation an opt-out itself sends and for HELP answers, which carriers
    require at all times.

    With `dlt_header` (a DLT-bound shortcode's sender ID) the text must match an approved
    template for that header: the template, entity and category IDs are stored and travel
    with the send; a text that matches none is stored `refused` (`dlt_no_template`, with
    the matcher's why) and never sent. A promotional match outside 09:00-21:00 IST is
    held until the window opens (`send_after`); the outbox sweep sends it then.

    Both decisions are kept on the message (SEND_RULES in `provider_options`) so that
    message_deliver takes them again at send time.
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
        # Always our own rules, never ones a shortcode's editable config might carry.
        provider_options={
            **(provider_options or {}),
            SEND_RULES: {"dlt_header": dlt_header, "ignore_suppression": ignore_suppression},
        },
        in_reply_to=in_reply_to,
    )
    suppression = None if ignore_suppression else suppression_get(phone=phone, shortcode=shortcode)
    if suppression is not None:
        message.status = Status.REFUSED
        message.error_code = "opted_out"
        message.error_message = _opted_out_reason(phone, suppression)
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


def _opted_out_reason(phone: str, suppression: Suppression) -> str:
    return f"{phone} opted out ({suppression.keyword or suppression.source}) on " + (
        f"{suppression.created_at:%Y-%m-%d %H:%M} UTC"
    )


def _dlt_stamp(message: Message, header: str) -> bool:
    """Resolve the message's DLT template; False (message marked refused) when none matches."""
    resolution = template_resolve(header=header, text=message.body)
    if not resolution.matched:
        message.status = Status.REFUSED
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
    options = {key: value for key, value in message.provider_options.items() if key != SEND_RULES}
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

    Before the provider is called, the suppression list and the DLT templates are
    checked again (see _send_rules_recheck): what would be refused now is `refused`.
    A send the provider refuses because the number opted out at the carrier puts the
    number on the suppression list (see carrier_opt_out_record).
    """
    now = timezone.now()
    claimed = Message.objects.filter(
        Q(send_after__isnull=True) | Q(send_after__lte=now), id=message_id, direction="out", status=Status.QUEUED
    ).update(status=Status.SENDING, attempts=F("attempts") + 1, next_attempt_at=None, updated_at=now)
    if not claimed:
        return "skipped"
    message = Message.objects.get(id=message_id)
    if (outcome := _send_rules_recheck(message)) is not None:
        return outcome
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
        opted_out = carrier_opt_out_record(provider=provider, message=message, error_code=exc.code)
        final = opted_out or final_attempt or message.attempts >= settings.DELIVER_MAX_ATTEMPTS
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


def _send_rules_recheck(message: Message) -> str | None:
    """
    Take message_send's decisions again for a claimed (`sending`) message, as things are now.

    A number that opted out since is refused (`opted_out`) unless the message goes even to
    suppressed numbers (the opt-out confirmation, HELP answers). A DLT-bound text must still
    match an approved template of its header: one revoked or changed since is refused
    (`dlt_no_template`, with the matcher's why), and the IDs sent are those of today's
    match; a match that is now promotional outside its window goes back to `queued` with
    `send_after`. Returns "refused", "held", or None to go on with the send. Costs one
    indexed query (the suppression list); the template index is cached.
    """
    rules = message.provider_options.get(SEND_RULES) or {}
    if not rules.get("ignore_suppression"):
        suppression = suppression_get(phone=message.phone, shortcode=message.shortcode)
        if suppression is not None:
            logger.info("send to %s refused at send time: opted out", message.phone)
            _message_refuse(message.id, code="opted_out", reason=_opted_out_reason(message.phone, suppression))
            return "refused"
    header = rules.get("dlt_header")
    if not header:
        return None
    resolution = template_resolve(header=header, text=message.body)
    if not resolution.matched:
        logger.warning("send to %s refused at send time, no DLT template for header %s", message.phone, header)
        _message_refuse(message.id, code="dlt_no_template", reason=resolution.why)
        return "refused"
    stamp = {
        "dlt_template_id": resolution.template_id,
        "dlt_entity_id": resolution.entity_id,
        "dlt_category": resolution.category,
    }
    if any(getattr(message, field) != value for field, value in stamp.items()):
        Message.objects.filter(id=message.id, status=Status.SENDING).update(**stamp, updated_at=timezone.now())
        for field, value in stamp.items():
            setattr(message, field, value)
    opens = promotional_window_next_start(now=timezone.now()) if resolution.promotional else None
    if opens is not None:
        # Held, as message_send holds it: not an attempt.
        Message.objects.filter(id=message.id, status=Status.SENDING).update(
            status=Status.QUEUED, send_after=opens, attempts=F("attempts") - 1, updated_at=timezone.now()
        )
        return "held"
    return None


def _message_refuse(message_id: int, *, code: str, reason: str) -> None:
    Message.objects.filter(id=message_id, status=Status.SENDING).update(
        status=Status.REFUSED, error_code=code, error_message=reason, updated_at=timezone.now()
    )


def carrier_opt_out_record(*, provider: Provider, message: Message, error_code: str, provider_status: str = "") -> bool:
    """
    When `provider` says the number opted out at the carrier or aggregator (its
    OPTED_OUT_ERROR_CODES, e.g. Twilio 21610), put it on our suppression list for the
    message's shortcode, with the code as keyword, so the next send is refused before it
    leaves. The refused message itself keeps its failed or rejected status. True when so.
    """
    if not provider.reports_opt_out(error_code=error_code, provider_status=provider_status):
        return False
    keyword = (error_code or provider_status).strip()[:30]
    suppression_add(
        phone=message.phone, shortcode=message.shortcode, keyword=keyword, source="provider", message=message
    )
    logger.info("%s says %s opted out (%s): suppressed on %s", provider.slug, message.phone, keyword, message.shortcode)
    return True


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
    """
    The outbound message a report on `provider`'s webhook is about: only one sent through
    that provider, found by our ref, else by the provider's id. A ref naming another
    provider's message matches nothing: that webhook's credential does not reach it.
    """
    outbound = Message.objects.filter(direction="out")
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
    return DeliveryReport.objects.create(
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


def delivery_reports_apply_pending(*, message_id: int, provider: str, provider_message_id: str) -> int:
    """
    Apply reports that arrived before the message's provider id was known; returns how many moved it.

    The rule of `_report_message` holds here too: only reports received on the message's
    own provider's webhook, and none whose ref names another message.
    """
    message = Message.objects.filter(id=message_id, direction="out", provider=provider).only("uuid").first()
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


def messages_requeue(*, message_ids: list[int]) -> int:
    """
    Send failed (or stuck queued) outbound messages again; returns how many were queued.

    A `refused` message is never sent: neither is an older `failed` row whose error code
    is a refusal (rows stored before refusals had their own status). What is re-queued
    still goes through message_deliver's send-time checks.
    """
    from delivery.tasks import deliver as deliver_task

    requeued = 0
    for message_id in message_ids:
        with transaction.atomic():
            moved = (
                Message.objects.filter(id=message_id, direction="out", status__in=[Status.FAILED, Status.QUEUED])
                .exclude(error_code__in=REFUSAL_CODES)
                .update(
                    status=Status.QUEUED,
                    error_code="",
                    error_message="",
                    updated_at=timezone.now(),
                )
            )
            if moved:
                enqueue_on_commit(deliver_task, message_id)
                requeued += 1
    return requeued


def messages_refused_count(*, message_ids: list[int]) -> int:
    """How many of these are refusals, which messages_requeue never sends."""
    refusals = Q(status=Status.REFUSED) | Q(status=Status.FAILED, error_code__in=REFUSAL_CODES)
    return Message.objects.filter(refusals, id__in=message_ids, direction="out").count()


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

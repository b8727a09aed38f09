"""
Handing a queued outbound message to its provider: claim, check again, throttle, send,
record, and the retry policy for what failed on the way.
"""

import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache, partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from delivery.channel_log import channel_log_exchanges, channel_log_sends
from delivery.correlation import correlation_bind, message_correlation_id, message_event
from delivery.models import DeliveryReport, Message, Suppression
from delivery.providers import UnknownProvider, all_providers, get_provider
from delivery.providers.base import HttpExchange, OutboundSMS, PermanentSendError, Provider, SendError, SendResult
from delivery.reports import delivery_reports_apply_pending, message_fail
from delivery.send_options import SendOptions
from delivery.statuses import Direction, Status
from delivery.suppression import carrier_opt_out_record, suppression_get, suppression_reason
from delivery.throttle import token_bucket_take, token_bucket_wait
from templates.services import promotional_window_next_start, template_resolve

logger = logging.getLogger(__name__)


# RetryLater's reason when the shortcode's throughput is spent (the gateway is fine).
THROTTLED = "throttled"


class RetryLater(Exception):
    """Not now: a transient provider failure or the shortcode's throughput is spent."""

    def __init__(self, countdown: float, reason: str):
        super().__init__(reason)
        self.countdown = countdown


def message_deliver(*, message_id: int, final_attempt: bool = False, message: Message | None = None) -> str:
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

    A message of a provider that `sends_through_bind` (SMPP) is left `queued` for its
    bind, which claims it itself (message_bind_claim).

    `message`, the row as this process stored it a moment ago (message_send's first attempt
    in process), spares reading it again: the claim then also requires its attempt count
    to be unchanged, so what is sent is what was read, and takes the suppression check in
    the same statement (a number on the list is then claimed as usual and refused).

    Returns what became of it: "skipped" (not queued, not due, or a bind's), Status.REFUSED,
    "held" (a promotional text outside its window), Status.SENT or Status.FAILED.
    """
    bind_providers = _bind_provider_slugs()
    if message is None:
        if not _message_claim(message_id, exclude_providers=bind_providers):
            return "skipped"
        message, suppression_checked = Message.objects.get(id=message_id), False
    else:
        claim = partial(_message_claim, message_id, exclude_providers=bind_providers, attempts=message.attempts)
        checks_suppression = not SendOptions.from_json(message.provider_options).ignore_suppression
        suppression_checked = checks_suppression and claim(unless_suppressed=message)
        if not suppression_checked and not claim():
            return "skipped"
        message.status, message.attempts = Status.SENDING, message.attempts + 1
    # Every line logged while the message is sent carries the id of the SMS it answers.
    with correlation_bind(message_correlation_id(message)):
        return _message_hand_over(message, final_attempt=final_attempt, suppression_checked=suppression_checked)


def messages_claim_fresh(messages: list[Message]) -> set[int]:
    """
    message_deliver's claim for many messages this process stored a moment ago (their first
    attempts in process), in one statement: `queued -> sending`, counting the attempt, for
    those still queued and due with the attempt count as read, not on the suppression list,
    and not a bind's (SMPP). Returns the ids claimed; the rest are left as they are, for
    message_deliver's own claim to judge one by one.
    """
    attempts = {message.id: message.attempts for message in messages}
    if not attempts:
        return set()
    now = timezone.now()
    with transaction.atomic():
        due = (
            _claimable(now)
            .select_for_update(of=("self",))
            .filter(id__in=attempts)
            .exclude(provider__in=_bind_provider_slugs())
            .exclude(Exists(_opted_out(phone=OuterRef("phone"), shortcode=OuterRef("shortcode"))))
            .values_list("id", "attempts")
        )
        claimed = {message_id for message_id, count in due if attempts[message_id] == count}
        if claimed:
            _claim(Message.objects.filter(id__in=claimed), now)
    for message in messages:
        if message.id in claimed:
            message.status, message.attempts = Status.SENDING, message.attempts + 1
    return claimed


def message_hand_over_claimed(message: Message, *, record: "SendsRecord", throughput_paid: bool = False) -> str:
    """
    message_deliver for a message messages_claim_fresh claimed (suppression checked): the
    rest of its send, its success kept in `record`; with `throughput_paid`, its share of the
    shortcode's throughput was taken already (messages_throughput_take).
    """
    with correlation_bind(message_correlation_id(message)):
        return _message_hand_over(
            message, final_attempt=False, suppression_checked=True, record=record.sent, throughput_paid=throughput_paid
        )


def messages_throughput_take(messages: list[Message]) -> set[int]:
    """
    _throughput_take for a batch of claimed messages at once: one take per shortcode for
    all its messages' segments, when its bucket has them now. Returns the ids paid for; the
    others (a bucket short of tokens, or a batch costing more than the bucket can hold)
    each take their own as they are sent.
    """
    groups: dict[tuple[str, float, float], list[Message]] = {}
    for message in messages:
        bucket = _throughput_bucket(message, SendOptions.from_json(message.provider_options))
        if bucket is not None:
            groups.setdefault(bucket, []).append(message)
    paid: set[int] = set()
    for (key, rate, floor), group in groups.items():
        cost = sum(max(message.segments, 1) for message in group)
        # token_bucket_wait charges a cost over what the bucket holds as that much: not a batch's to use.
        affordable = cost <= max(rate, 1.0) - floor
        if affordable and not token_bucket_wait(key, rate=rate, cost=cost, floor=floor):
            paid.update(message.id for message in group)
    return paid


class SendsRecord:
    """
    The successful sends of a batch of first attempts (messages_deliver_here). Each send's
    provider id and `sent` are stored as it returns (one statement: what must not be lost,
    or the send would be made again); its channel log rows and the check for delivery
    reports that came before its id are done for all at once by `flush`, which the batch
    calls at its end. A process that dies before then leaves those log rows unwritten and
    such early reports for the support queue's unmatched reports.
    """

    def __init__(self):
        self.sends: list[tuple[Message, str, SendResult]] = []

    def sent(self, message: Message, result: SendResult) -> None:
        provider_message_id = result.provider_message_id[:100]
        _sent_mark(message.id, provider_message_id)
        self.sends.append((message, provider_message_id, result))

    def flush(self) -> None:
        sends, self.sends = self.sends, []
        if not sends:
            return
        channel_log_sends([(message.provider, message.id, result.exchanges) for message, _, result in sends])
        waiting = set(
            DeliveryReport.objects.filter(
                message__isnull=True,
                provider__in={message.provider for message, _, _ in sends},
                provider_message_id__in={provider_message_id for _, provider_message_id, _ in sends},
            ).values_list("provider", "provider_message_id")
        )
        for message, provider_message_id, _ in sends:
            if (message.provider, provider_message_id) in waiting:
                delivery_reports_apply_pending(
                    message_id=message.id, provider=message.provider, provider_message_id=provider_message_id
                )


def _message_hand_over(
    message: Message,
    *,
    final_attempt: bool,
    suppression_checked: bool = False,
    record: Callable[[Message, SendResult], None] | None = None,
    throughput_paid: bool = False,
) -> str:
    """The rest of message_deliver, for a claimed message; a call to the provider ends with a message.sent event."""
    options = SendOptions.from_json(message.provider_options)
    if (outcome := _send_rules_recheck(message, options, suppression_checked=suppression_checked)) is not None:
        return outcome
    if not throughput_paid:
        _throughput_take(message, options)
    provider = get_provider(message.provider)
    started = time.monotonic()
    try:
        result = provider.send(_outbound_sms(message, options))
    except SendError as exc:
        duration_ms = _ms_since(started)
        return _send_error_handle(message, provider, exc, final_attempt=final_attempt, duration_ms=duration_ms)
    duration_ms = _ms_since(started)
    (record or _send_success_record)(message, result)
    message_event("message.sent", message, outcome="sent", duration_ms=duration_ms, error_code="")
    return Status.SENT


def _bind_provider_slugs() -> tuple[str, ...]:
    """The providers whose sends a long-lived bind makes (SMPP), not the deliver task."""
    return tuple(provider.slug for provider in all_providers() if provider.sends_through_bind)


def message_bind_claim(*, message_id: int) -> Message | None:
    """
    For a bind (smpp_gateway): claim a queued message as message_deliver does
    (`queued -> sending`, one conditional UPDATE) and take the send rules again. The
    message to submit, with the DLT IDs of today's match, or None when another run has it
    or it was refused or held. The bind then reports with message_bind_sent or
    message_bind_failed; a message it could not finish it gives back with
    messages_release.
    """
    if not _message_claim(message_id):
        return None
    message = Message.objects.get(id=message_id)
    if _send_rules_recheck(message, SendOptions.from_json(message.provider_options)) is not None:
        return None
    return message


def message_bind_sent(
    *, message: Message, provider_message_id: str, exchanges: tuple[HttpExchange, ...] = (), duration_ms: float = 0
) -> None:
    """
    The SMSC accepted every part of a claimed message: record its id and the exchanges
    (one per part, for the channel log) as any send's (_send_success_record).
    """
    _send_success_record(message, SendResult(provider_message_id=provider_message_id, exchanges=exchanges))
    message_event("message.sent", message, outcome="sent", duration_ms=duration_ms, error_code="")


def message_bind_failed(
    *, message: Message, code: str, reason: str, exchanges: tuple[HttpExchange, ...] = (), duration_ms: float = 0
) -> str:
    """The SMSC refused a part for good: the message is `failed` with the SMSC's status as its reason."""
    provider = get_provider(message.provider)
    error = PermanentSendError(reason, code=code, exchanges=exchanges)
    return _send_error_handle(message, provider, error, final_attempt=True, duration_ms=duration_ms)


def messages_release(*, message_ids: list[int]) -> int:
    """
    Claimed messages given back unsent (`sending -> queued`, not an attempt): by a bind that
    could not finish them, or by a batch's first attempts after its gateway failed. Returns
    how many.
    """
    return Message.objects.filter(id__in=message_ids, status=Status.SENDING).update(
        status=Status.QUEUED, attempts=F("attempts") - 1, updated_at=timezone.now()
    )


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


def _message_claim(
    message_id: int,
    *,
    exclude_providers: tuple[str, ...] = (),
    attempts: int | None = None,
    unless_suppressed: Message | None = None,
) -> bool:
    """
    `queued -> sending` for a message that is due, counting the attempt; False when another
    run has it, when its provider is one of `exclude_providers`, when `attempts` is given
    and is no longer its attempt count, or when `unless_suppressed` (the message itself)
    is given and its number is on the suppression list for its shortcode.
    """
    now = timezone.now()
    due = _claimable(now).filter(id=message_id)
    if attempts is not None:
        due = due.filter(attempts=attempts)
    if unless_suppressed is not None:
        due = due.exclude(Exists(_opted_out(phone=unless_suppressed.phone, shortcode=unless_suppressed.shortcode)))
    if exclude_providers:
        due = due.exclude(provider__in=exclude_providers)
    return bool(_claim(due, now))


def _claimable(now: datetime) -> QuerySet[Message]:
    """Outbound messages a claim may take now: `queued` and due."""
    return Message.objects.filter(
        Q(send_after__isnull=True) | Q(send_after__lte=now), direction=Direction.OUTBOUND, status=Status.QUEUED
    )


def _opted_out(*, phone, shortcode) -> QuerySet[Suppression]:
    """suppression_get's rule, for values or OuterRefs: the shortcode's own opt-out or an all-shortcodes one."""
    return Suppression.objects.filter(Q(shortcode=shortcode) | Q(shortcode=""), phone=phone)


def _claim(due: QuerySet[Message], now: datetime) -> int:
    """`queued -> sending` for `due`, counting the attempt; how many were claimed."""
    return due.update(status=Status.SENDING, attempts=F("attempts") + 1, next_attempt_at=None, updated_at=now)


def _send_rules_recheck(message: Message, options: SendOptions, *, suppression_checked: bool = False) -> str | None:
    """
    Take message_send's decisions again for a claimed (`sending`) message, as things are now.

    A number that opted out since is refused (`opted_out`) unless the message goes even to
    suppressed numbers (the opt-out confirmation, HELP answers). A DLT-bound text must still
    match an approved template of its header: one revoked or changed since is refused
    (`dlt_no_template`, with the matcher's why), and the IDs sent are those of today's
    match; a match that is now promotional outside its window goes back to `queued` with
    `send_after`. Returns Status.REFUSED, "held", or None to go on with the send. Costs one
    indexed query (the suppression list), none when the claim checked it
    (`suppression_checked`); the template index is cached.
    """
    if not options.ignore_suppression and not suppression_checked:
        suppression = suppression_get(phone=message.phone, shortcode=message.shortcode)
        if suppression is not None:
            logger.info("send to %s refused at send time: opted out", message.phone)
            reason = suppression_reason(phone=message.phone, suppression=suppression)
            _message_refuse(message, code="opted_out", reason=reason)
            return Status.REFUSED
    header = options.dlt_header
    if not header:
        return None
    resolution = template_resolve(header=header, text=message.body)
    if not resolution.matched:
        logger.warning("send to %s refused at send time, no DLT template for header %s", message.phone, header)
        _message_refuse(message, code="dlt_no_template", reason=resolution.why)
        return Status.REFUSED
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


def _message_refuse(message: Message, *, code: str, reason: str) -> None:
    Message.objects.filter(id=message.id, status=Status.SENDING).update(
        status=Status.REFUSED, error_code=code, error_message=reason, updated_at=timezone.now()
    )
    message_event("message.refused", message, reason=code)
    message_event("message.sent", message, outcome="refused", duration_ms=0, error_code=code)


def _throughput_take(message: Message, options: SendOptions) -> None:
    """
    Spend the shortcode's messages-per-second budget, one token per segment (what the
    aggregator charges and paces); RetryLater when it is spent. A batch's message leaves
    settings.BULK_REPLY_RESERVE of the bucket to replies, which take it all.
    """
    bucket = _throughput_bucket(message, options)
    if bucket is None:
        return
    key, rate, floor = bucket
    wait = token_bucket_take(key, rate=rate, cost=max(message.segments, 1), floor=floor)
    if wait:
        # Over the shortcode's throughput: back in the queue, not dropped, and not an attempt.
        messages_release(message_ids=[message.id])
        raise RetryLater(wait, THROTTLED)


def _throughput_bucket(message: Message, options: SendOptions) -> tuple[str, float, float] | None:
    """The shortcode's token bucket a send spends from: (key, rate, floor left to replies); None when unlimited."""
    if not options.max_mps:
        return None
    rate = float(options.max_mps)
    return f"mps:{message.shortcode}", rate, rate * settings.BULK_REPLY_RESERVE if options.bulk else 0.0


def _outbound_sms(message: Message, options: SendOptions) -> OutboundSMS:
    return OutboundSMS(
        reference=str(message.uuid),
        to=message.phone,
        sender=options.sender or message.shortcode,
        body=message.body,
        callback_url=callback_url(provider=message.provider, reference=message.uuid),
        options=send_options(message),
    )


def send_options(message: Message) -> dict:
    """What the provider receives as options: the shortcode's provider options, plus the DLT IDs it must pass on."""
    options = SendOptions.from_json(message.provider_options).provider_options()
    if message.dlt_template_id:
        options.update(
            dlt_template_id=message.dlt_template_id,
            dlt_entity_id=message.dlt_entity_id,
            dlt_category=message.dlt_category,
        )
    return options


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


def _send_error_handle(
    message: Message, provider: Provider, exc: SendError, *, final_attempt: bool, duration_ms: float = 0
) -> str:
    """
    Log the failed call and apply the retry policy: a transient error before the last
    attempt goes back to `queued` and raises RetryLater; anything else is `failed`.
    `duration_ms` is how long the failed call took, for the message.sent event.
    """
    channel_log_exchanges(provider=message.provider, message_id=message.id, exchanges=exc.exchanges)
    opted_out = carrier_opt_out_record(provider=provider, message=message, error_code=exc.code)
    final = opted_out or final_attempt or message.attempts >= settings.DELIVER_MAX_ATTEMPTS
    if exc.transient and not final:
        countdown = retry_countdown(message.attempts, exc.retry_after)
        Message.objects.filter(id=message.id, status=Status.SENDING).update(
            status=Status.QUEUED,
            error_code=exc.code[:50],
            error_message=str(exc),
            next_attempt_at=timezone.now() + timedelta(seconds=countdown),
            updated_at=timezone.now(),
        )
        message_event("message.sent", message, outcome="retry", duration_ms=duration_ms, error_code=exc.code)
        raise RetryLater(countdown, str(exc)) from exc
    reason = str(exc) if not exc.transient else f"gave up after {message.attempts} attempts: {exc}"
    message_fail(message_id=message.id, code=exc.code or "send_failed", reason=reason)
    message_event(
        "message.sent", message, outcome="failed", duration_ms=duration_ms, error_code=exc.code, transient=exc.transient
    )
    return Status.FAILED


def retry_countdown(attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter (about 2 s, 4 s, 8 s ... capped at 5 min); a provider's Retry-After wins."""
    if retry_after is not None:
        return min(retry_after, 3600.0)
    base = min(2.0**attempts, 300.0)
    return base + random.uniform(0, base / 2)


def _send_success_record(message: Message, result: SendResult) -> None:
    """Store the provider's id, log the calls, and apply the reports that arrived before the id: SendsRecord for one."""
    record = SendsRecord()
    with transaction.atomic():
        record.sent(message, result)
        record.flush()


@cache
def _sent_mark_sql() -> str:
    # Written once per process: the ORM's Case and Coalesce cost more to compile than the
    # statement costs to run, on the path every message takes.
    # Names from the model's own metadata, values all parameters: nothing here comes from input.
    quote = connection.ops.quote_name
    table = quote(Message._meta.db_table)
    pmid, sent_at, status, updated_at, pk = (
        quote(Message._meta.get_field(name).column)
        for name in ("provider_message_id", "sent_at", "status", "updated_at", "id")
    )
    not_yet_sent = f"{status} IN ('{Status.QUEUED}', '{Status.SENDING}')"
    return (
        f"UPDATE {table} SET {pmid} = COALESCE({pmid}, %s), "  # noqa: S608
        f"{sent_at} = CASE WHEN {not_yet_sent} THEN %s ELSE {sent_at} END, "
        f"{status} = CASE WHEN {not_yet_sent} THEN '{Status.SENT}' ELSE {status} END, "
        f"{updated_at} = %s WHERE {pk} = %s"
    )


def _sent_mark(message_id: int, provider_message_id: str) -> None:
    """
    The provider took the message: store its id and move it to `sent`, in one statement.
    The id is kept even when a report already moved the message past `sent` (nor is an
    id already stored replaced); the status and its time only move forward.
    """
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_sent_mark_sql(), [provider_message_id, now, now, message_id])

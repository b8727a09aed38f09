"""
Bulk sends: accept a batch in one go, hand it over at the shortcode's speed, report progress.

A batch is accepted with a handful of queries whatever its size (recipients go in with
one COPY on PostgreSQL, a statement per thousand elsewhere) and ONE dispatch task is
queued. The dispatcher then runs in ticks
(BULK_TICK_SECONDS apart): each tick claims the next recipients whose segments fit the
shortcode's messages per second, less the share kept for replies (BULK_REPLY_RESERVE),
and stores their messages through delivery.outbound.message_send, which queues their
deliveries on the bulk queue. Replies are never behind a batch: they wait on another
queue, and a batch's message takes the shortcode's token bucket only above the reserve.

With a broker each tick schedules the next (a countdown); on the embedded default, where
a countdown is not waited for, the periodic job `batches_tick` ticks running batches.
That job also revives, with a broker, a batch whose next tick was lost.
"""

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone
from phonenumbers import PhoneMetadata

from bulk.models import Batch, BatchRecipient
from commands.models import Shortcode
from delivery.models import Message, Suppression
from delivery.outbound import message_send
from delivery.phones import InvalidPhoneNumber, to_e164
from delivery.queueing import enqueue_on_commit, publish, tasks_run_in_process
from delivery.reports import message_fail
from delivery.segments import segment_info
from delivery.send_options import send_options_for
from delivery.statuses import Status
from templates.services import (
    TemplateRenderError,
    promotional_window_next_start,
    template_lookup,
    template_render,
    template_resolve,
)

logger = logging.getLogger(__name__)

# The dispatcher, queued by name (bulk.tasks imports this module); routed to the bulk queue.
DISPATCH_TASK = "bulk.tasks.batch_dispatch"
# Rows per INSERT and per suppression look-up when a batch is accepted.
CHUNK_SIZE = 1000
# With a broker, the periodic job revives a batch whose tick is this late (its task was lost).
REVIVE_AFTER_SECONDS = 10.0
# A text this short is one segment in any encoding (UCS-2 holds 70 characters).
SHORTEST_SEGMENT = 70
E164_DIGITS_RE = re.compile(r"\+[1-9][0-9]{6,14}")
# A tick that comes late hands over at most this many ticks' worth.
MAX_CATCH_UP_TICKS = 3
# "{name}" in a batch's text takes the recipient's variable `name`.
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,49})\}")


class BatchRefused(Exception):
    """A batch we will not accept: a stable `code` and a sentence (`detail`)."""

    def __init__(self, code: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra


@dataclass(frozen=True)
class RecipientInput:
    """One recipient as given: a number (E.164 or national), its own variables, its reference."""

    to: str
    variables: Mapping[str, Any] | None = None
    reference: str = ""


@dataclass(slots=True)
class RecipientRow:
    """A recipient on its way into the table (a model instance per row costs more than its insert)."""

    variables: dict
    reference: str
    phone: str = ""
    state: str = BatchRecipient.State.PENDING
    error: str = ""


@dataclass(frozen=True)
class BatchProgress:
    """
    Where a batch's recipients are. `queued`: not handed to the provider yet (pending, or
    a message queued or sending); `sent`, `delivered`, `failed` (failed, undelivered or
    rejected) and `refused` (a message we refused at send time) follow its messages;
    `suppressed`, `invalid`, `duplicate` and `cancelled` were never sent.
    """

    total: int
    queued: int
    sent: int
    delivered: int
    failed: int
    refused: int
    suppressed: int
    invalid: int
    duplicate: int
    cancelled: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# Accept ---------------------------------------------------------------------------------


def batch_create(
    *,
    shortcode: Shortcode,
    recipients: Iterable[RecipientInput],
    text: str = "",
    template: str = "",
    variables: Mapping[str, Any] | None = None,
    reference: str = "",
    callback_url: str = "",
    client_id: int | None = None,
    client_name: str = "",
) -> Batch:
    """
    Store a batch and its recipients, and queue its dispatcher once the transaction commits.

    Exactly one of `text` ("{name}" placeholders take each recipient's variables over the
    batch's `variables`) or `template` (an approved DLT template of the shortcode's header,
    by ID or name) is given. Each number is normalised to E.164 in the shortcode's country;
    one that is not a number is kept `invalid`, a repeat `duplicate`, one on the shortcode's
    suppression list `suppressed`, a text recipient missing a variable or over the
    shortcode's segment limit `invalid`: counted, never sent. Raises BatchRefused for a
    batch as a whole: `no_recipients`, `too_many_recipients`, `text_or_template`,
    `template_not_found` (or `template_ambiguous`), `dlt_no_template` (a DLT-bound
    shortcode's text matches no approved template) and `nothing_to_send`.
    """
    text = (text or "").strip()
    template = str(template or "").strip()
    if bool(text) == bool(template):
        raise BatchRefused("text_or_template", "Give either a text or a template, not both and not neither.")
    shared = dict(variables or {})
    rows = _recipient_rows(shortcode, list(recipients), text=text, shared=shared)
    dlt_template_id = _template_id(shortcode, template) if template else ""
    if text and shortcode.requires_dlt:
        _text_dlt_check(shortcode, rows, text=text, shared=shared)
    if not any(row.state == BatchRecipient.State.PENDING for row in rows):
        raise BatchRefused("nothing_to_send", "No recipient of this batch can be sent to.", counts=_counts(rows))
    with transaction.atomic():
        batch = Batch.objects.create(
            shortcode=shortcode.number,
            text=text,
            dlt_template_id=dlt_template_id,
            variables=shared,
            reference=reference,
            callback_url=callback_url,
            client_id=client_id,
            client_name=client_name[:150],
            total=len(rows),
            next_tick_at=timezone.now(),
        )
        _suppressed_mark(shortcode.number, rows)
        _recipients_insert(batch.id, rows)
        enqueue_on_commit(DISPATCH_TASK, batch.id)
    logger.info("batch %s accepted: %d recipients from %s", batch.id, len(rows), shortcode.number)
    return batch


def _recipient_rows(
    shortcode: Shortcode, recipients: list[RecipientInput], *, text: str, shared: dict
) -> list[RecipientRow]:
    if not recipients:
        raise BatchRefused("no_recipients", "A batch needs at least one recipient.")
    if len(recipients) > settings.BULK_MAX_RECIPIENTS:
        raise BatchRefused(
            "too_many_recipients",
            f"A batch holds at most {settings.BULK_MAX_RECIPIENTS} recipients; this one has {len(recipients)}.",
        )
    seen: set[str] = set()
    rows = []
    for recipient in recipients:
        own = dict(recipient.variables or {})
        row = RecipientRow(variables=own, reference=str(recipient.reference or "")[:100])
        try:
            row.phone = phone_normalise(str(recipient.to or ""), region=shortcode.country)
        except InvalidPhoneNumber as exc:
            row.phone, row.state, row.error = str(recipient.to or "")[:40], BatchRecipient.State.INVALID, str(exc)
        else:
            if row.phone in seen:
                row.state, row.error = BatchRecipient.State.DUPLICATE, "already a recipient of this batch"
            seen.add(row.phone)
        if text and row.state == BatchRecipient.State.PENDING:
            try:
                _text_check(shortcode, text_render(text, {**shared, **own}))
            except BatchRefused as exc:
                row.state, row.error = BatchRecipient.State.INVALID, exc.detail[:200]
        rows.append(row)
    return rows


def phone_normalise(raw: str, *, region: str) -> str:
    """
    delivery.phones.to_e164, faster for the common case of a batch: a number already in
    E.164 with the region's own country code. That one is checked by phonenumbers'
    is_valid_number without its parse (most of to_e164's cost). Only where parsing could
    not change the digits: no national prefix at the start of the national number and a
    region whose national prefix is a plain one (no parsing rule that rewrites digits).
    Any other number, and any the check refuses, goes through to_e164: same results.
    """
    text = raw.strip()
    metadata = PhoneMetadata.metadata_for_region(region.upper())
    code = str(metadata.country_code) if metadata is not None else ""
    if (
        code
        and E164_DIGITS_RE.fullmatch(text)
        and text.startswith("+" + code)
        and metadata.national_prefix_transform_rule is None
        and metadata.national_prefix_for_parsing in (None, metadata.national_prefix)
    ):
        national = text[1 + len(code) :]
        if national and not national.startswith(("0", metadata.national_prefix or "0")):
            number = phonenumbers.PhoneNumber(country_code=int(code), national_number=int(national))
            if phonenumbers.is_valid_number(number):
                return text
    return to_e164(text, region=region)


def _text_check(shortcode: Shortcode, text: str) -> None:
    if len(text) <= SHORTEST_SEGMENT:
        return
    segments = segment_info(text).segments
    if segments > shortcode.segment_limit:
        raise BatchRefused("too_long", f"{segments} segments, over the shortcode's limit of {shortcode.segment_limit}.")


def text_render(text: str, variables: Mapping[str, Any]) -> str:
    """`text` with each "{name}" replaced by `variables[name]`; BatchRefused `missing_variable` for one not given."""

    def value(found: re.Match) -> str:
        name = found.group(1)
        if name not in variables:
            raise BatchRefused("missing_variable", f"no value for {{{name}}}")
        return str(variables[name])

    return PLACEHOLDER_RE.sub(value, text)


def _template_id(shortcode: Shortcode, reference: str) -> str:
    try:
        return template_lookup(header=shortcode.sender, reference=reference).dlt_template_id
    except TemplateRenderError as exc:
        code = exc.code if exc.code in ("not_found", "ambiguous") else "not_found"
        raise BatchRefused(f"template_{code}", exc.messages[0]) from exc


def _text_dlt_check(shortcode: Shortcode, rows: list[RecipientRow], *, text: str, shared: dict) -> None:
    """A DLT-bound shortcode's batch text must match an approved template: checked on the first recipient."""
    first = next((row for row in rows if row.state == BatchRecipient.State.PENDING), None)
    if first is None:
        return
    resolution = template_resolve(header=shortcode.sender, text=text_render(text, {**shared, **first.variables}))
    if not resolution.matched:
        nearest = {"nearest_template_id": resolution.nearest_template_id} if resolution.nearest_template_id else {}
        raise BatchRefused("dlt_no_template", resolution.why, **nearest)


def _recipients_insert(batch_id: int, rows: list[RecipientRow]) -> None:
    """
    Insert the recipients: on PostgreSQL with COPY, elsewhere one statement run for each
    chunk of rows (executemany). At 100,000 rows the ORM's bulk_create spends longer
    compiling values than the database spends inserting them.
    """
    table = BatchRecipient._meta.db_table
    columns = ("batch_id", "phone", "variables", "reference", "state", "error")
    quote = connection.ops.quote_name
    names = ", ".join(quote(column) for column in columns)

    def values(row: RecipientRow) -> tuple:
        return (batch_id, row.phone, json.dumps(row.variables), row.reference, row.state, row.error)

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Table and column names come from the model; the rows travel as COPY data.
            with cursor.cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(values(row))
            return
        placeholders = ", ".join(["%s"] * len(columns))
        sql = f"INSERT INTO {quote(table)} ({names}) VALUES ({placeholders})"  # noqa: S608
        for start in range(0, len(rows), CHUNK_SIZE):
            cursor.executemany(sql, [values(row) for row in rows[start : start + CHUNK_SIZE]])


def _suppressed_mark(shortcode: str, rows: list[RecipientRow]) -> None:
    pending = [row for row in rows if row.state == BatchRecipient.State.PENDING]
    suppressed = _suppressed_among(shortcode, [row.phone for row in pending])
    for row in pending:
        if row.phone in suppressed:
            row.state, row.error = BatchRecipient.State.SUPPRESSED, "opted out of this shortcode"


def _suppressed_among(shortcode: str, phones: list[str]) -> set[str]:
    """
    Which of `phones` opted out of `shortcode`. A short suppression list is read whole (one
    query); a long one is asked about the numbers a thousand at a time.
    """
    opted_out = Suppression.objects.filter(shortcode__in=[shortcode, ""])
    if opted_out.count() <= len(phones):
        return set(opted_out.values_list("phone", flat=True)) & set(phones)
    found: set[str] = set()
    for start in range(0, len(phones), CHUNK_SIZE):
        found |= suppressed_phones(shortcode, phones[start : start + CHUNK_SIZE])
    return found


def suppressed_phones(shortcode: str, phones: list[str]) -> set[str]:
    """Which of `phones` opted out of `shortcode` (or of every shortcode): one indexed query."""
    return set(
        Suppression.objects.filter(phone__in=phones, shortcode__in=[shortcode, ""]).values_list("phone", flat=True)
    )


def _counts(rows: list[RecipientRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return counts


# The CSV columns a number may be in, by their usual names; any other column is a variable.
PHONE_COLUMNS = ("phone", "to", "mobile", "msisdn", "number")


def recipients_from_csv(content: bytes) -> list[RecipientInput]:
    """
    The recipients of an uploaded CSV (UTF-8, a header row): the number from the first
    column named phone, to, mobile, msisdn or number (any case), `reference` when there is
    such a column, and every other column as a variable of that name. BatchRefused
    `bad_csv` for a file that is not such a CSV.
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchRefused("bad_csv", "The file is not UTF-8 text: save the sheet as 'CSV UTF-8'.") from None
    # Spreadsheets save ";" or tab where "," is the decimal mark: the header row tells which.
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [name.strip() for name in next(reader, [])]
    lowered = [name.lower() for name in header]
    phone_at = next((lowered.index(name) for name in PHONE_COLUMNS if name in lowered), None)
    if phone_at is None:
        raise BatchRefused("bad_csv", f"No number column: name one of {', '.join(PHONE_COLUMNS)} in the first row.")
    reference_at = lowered.index("reference") if "reference" in lowered else None
    variable_columns = [(at, name) for at, name in enumerate(header) if at not in (phone_at, reference_at) and name]
    recipients = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        cells = row + [""] * (len(header) - len(row))
        recipients.append(
            RecipientInput(
                to=cells[phone_at].strip(),
                variables={name: cells[at].strip() for at, name in variable_columns},
                reference=cells[reference_at].strip() if reference_at is not None else "",
            )
        )
    return recipients


# Dispatch -------------------------------------------------------------------------------


def batch_dispatch(*, batch_id: int) -> dict:
    """
    One tick of a batch (batch_dispatch_tick), then, with a broker, the next one queued
    with a countdown. On the embedded default the periodic job ticks instead; a paused
    batch is left to it too (a countdown of hours would sit in a worker's memory).
    """
    outcome = batch_dispatch_tick(batch_id=batch_id)
    next_in = outcome.get("next_in")
    if next_in is not None and not tasks_run_in_process():
        publish(DISPATCH_TASK, batch_id, countdown=max(next_in, 0.0))
    return outcome


def batch_dispatch_tick(*, batch_id: int, now: datetime | None = None) -> dict:
    """
    Hand over the next recipients of a batch that fit one tick, or pause or finish it.

    The budget is the shortcode's messages per second less BULK_REPLY_RESERVE, times
    BULK_TICK_SECONDS, in segments, shared by the shortcode's running batches. A
    promotional batch outside the window is paused until it opens (nothing claimed, nothing
    dropped). The claim is one conditional UPDATE moving the batch's cursor from what this
    tick read (and only when the tick is due), so a tick that runs twice hands nobody over
    twice; the messages are stored in the same transaction.

    Returns {"handed_over": n, "suppressed": k, "invalid": j, "next_in": seconds} after a
    tick; {"paused_until": iso} when paused; {"done": True}; or {"skipped": why} (final,
    not due, claimed by another run), with "next_in" when this run should try again.
    """
    now = now or timezone.now()
    batch = Batch.objects.filter(id=batch_id).first()
    if batch is None or batch.state not in Batch.ACTIVE_STATES:
        return {"skipped": "final"}
    if batch.next_tick_at is not None and batch.next_tick_at > now:
        remaining = (batch.next_tick_at - now).total_seconds()
        # A tick a little early comes again; one far off belongs to the periodic job.
        return {"skipped": "not_due", **({"next_in": remaining} if remaining <= settings.BULK_TICK_SECONDS else {})}
    shortcode = Shortcode.objects.filter(number=batch.shortcode).first()
    if shortcode is None:
        _batch_end(batch, Batch.State.CANCELLED, now=now, reason="the shortcode no longer exists")
        return {"skipped": "no_shortcode"}
    planned = _tick_plan(batch, shortcode, now=now)
    if not planned:
        return {"done": True} if _batch_end(batch, Batch.State.DONE, now=now) else {"skipped": "claimed"}
    opens = _window_closed_until(batch, shortcode, planned[0][1], now=now)
    if opens is not None:
        paused = _batch_move(batch, now=now, state=Batch.State.PAUSED_FOR_WINDOW, next_tick_at=opens)
        if paused:
            logger.info("batch %s paused until the promotional window opens at %s", batch.id, opens.isoformat())
        return {"paused_until": opens.isoformat()} if paused else {"skipped": "claimed"}
    return _tick_hand_over(batch, shortcode, planned, now=now)


def _tick_budget(batch: Batch, shortcode: Shortcode, *, now: datetime) -> float:
    """
    Segments one tick of this batch may hand over: the batch's share of the shortcode's
    speed for one tick; a running batch's tick that comes late (a busy worker or beat)
    catches up the time since it was due, at most MAX_CATCH_UP_TICKS' worth. The token
    bucket still holds the pace of the sends themselves.
    """
    tick = settings.BULK_TICK_SECONDS
    elapsed = tick
    if batch.state == Batch.State.RUNNING and batch.next_tick_at is not None:
        elapsed = (now - batch.next_tick_at).total_seconds() + tick
    seconds = min(max(elapsed, tick), tick * MAX_CATCH_UP_TICKS)
    per_tick = shortcode.max_mps * (1 - settings.BULK_REPLY_RESERVE) * seconds
    sharing = (
        Batch.objects.filter(shortcode=batch.shortcode, state__in=[Batch.State.ACCEPTED, Batch.State.RUNNING])
        .exclude(id=batch.id)
        .count()
    )
    return max(per_tick / (sharing + 1), 1.0)


def _tick_plan(batch: Batch, shortcode: Shortcode, *, now: datetime) -> list[tuple[BatchRecipient, str | None, str]]:
    """The next pending recipients whose segments fit the budget, with their text (None, why: cannot be rendered)."""
    budget = _tick_budget(batch, shortcode, now=now)
    candidates = BatchRecipient.objects.filter(
        batch_id=batch.id, id__gt=batch.cursor, state=BatchRecipient.State.PENDING
    ).order_by("id")[: int(budget)]
    planned = []
    spent = 0
    for recipient in candidates:
        text, why = _recipient_text(batch, shortcode, recipient)
        cost = segment_info(text).segments if text is not None else 0
        if planned and spent + cost > budget:
            break
        planned.append((recipient, text, why))
        spent += cost
    return planned


def _recipient_text(batch: Batch, shortcode: Shortcode, recipient: BatchRecipient) -> tuple[str | None, str]:
    variables = {**batch.variables, **recipient.variables}
    try:
        if batch.dlt_template_id:
            text = template_render(dlt_template_id=batch.dlt_template_id, values=variables)
        else:
            text = text_render(batch.text, variables)
        _text_check(shortcode, text)
    except TemplateRenderError as exc:
        return None, exc.messages[0][:200]
    except BatchRefused as exc:
        return None, exc.detail[:200]
    return text, ""


def _window_closed_until(batch: Batch, shortcode: Shortcode, first_text: str | None, *, now: datetime):
    """When the batch is promotional and the window is closed: when it opens; else None."""
    if not shortcode.requires_dlt or first_text is None:
        return None
    if not template_resolve(header=shortcode.sender, text=first_text).promotional:
        return None
    return promotional_window_next_start(now=now)


def _tick_hand_over(batch: Batch, shortcode: Shortcode, planned: list, *, now: datetime) -> dict:
    options = replace(send_options_for(shortcode), bulk=True)
    next_tick_at = now + timedelta(seconds=settings.BULK_TICK_SECONDS)
    counts = {"handed_over": 0, "suppressed": 0, "invalid": 0}
    held_until = None
    with transaction.atomic():
        if not _batch_move(
            batch, now=now, state=Batch.State.RUNNING, next_tick_at=next_tick_at, cursor=planned[-1][0].id
        ):
            return {"skipped": "claimed"}
        suppressed = suppressed_phones(batch.shortcode, [recipient.phone for recipient, _, _ in planned])
        for recipient, text, why in planned:
            if recipient.phone in suppressed:
                recipient.state, recipient.error = BatchRecipient.State.SUPPRESSED, "opted out of this shortcode"
            elif text is None:
                recipient.state, recipient.error = BatchRecipient.State.INVALID, why
            else:
                recipient.message = message_send(
                    shortcode=shortcode.number,
                    phone=recipient.phone,
                    body=text,
                    provider=shortcode.provider,
                    options=options,
                    reference=recipient.reference or batch.reference,
                    callback_url=batch.callback_url,
                )
                recipient.state = BatchRecipient.State.MESSAGE
                held_until = held_until or recipient.message.send_after
            counts[{"message": "handed_over"}.get(recipient.state, recipient.state)] += 1
        BatchRecipient.objects.bulk_update([r for r, _, _ in planned], ["state", "error", "message"])
        if held_until is not None:
            # The window closed during the tick: what was handed over is held, the rest waits.
            Batch.objects.filter(id=batch.id).update(
                state=Batch.State.PAUSED_FOR_WINDOW, next_tick_at=held_until, updated_at=now
            )
            return {**counts, "paused_until": held_until.isoformat()}
    return {**counts, "next_in": (next_tick_at - timezone.now()).total_seconds()}


def _batch_move(batch: Batch, *, now: datetime, **changes) -> bool:
    """Apply `changes` when the batch is still as this tick read it (active, same cursor, due); False otherwise."""
    due = Q(next_tick_at__isnull=True) | Q(next_tick_at__lte=now)
    return bool(
        Batch.objects.filter(due, id=batch.id, cursor=batch.cursor, state__in=Batch.ACTIVE_STATES).update(
            **changes, updated_at=now
        )
    )


def _batch_end(batch: Batch, state: str, *, now: datetime, reason: str = "") -> bool:
    """`done` (nothing pending is left) or `cancelled`; pending recipients of a cancelled batch are cancelled."""
    with transaction.atomic():
        if not _batch_move(batch, now=now, state=state, finished_at=now, next_tick_at=None):
            return False
        if state == Batch.State.CANCELLED:
            _pending_cancel(batch.id, reason=reason)
    logger.info("batch %s %s%s", batch.id, state, f": {reason}" if reason else "")
    return True


def _pending_cancel(batch_id: int, *, reason: str) -> int:
    return BatchRecipient.objects.filter(batch_id=batch_id, state=BatchRecipient.State.PENDING).update(
        state=BatchRecipient.State.CANCELLED, error=reason[:200]
    )


def batches_tick(*, now: datetime | None = None, limit: int = 100) -> dict:
    """
    The periodic job: queue a tick of every active batch that is due. On the embedded
    default that is how batches advance (the tick runs here, at once); with a broker only
    batches whose tick is REVIVE_AFTER_SECONDS late are queued (their task was lost).
    {"ticked": n}.
    """
    now = now or timezone.now()
    late = 0.0 if tasks_run_in_process() else REVIVE_AFTER_SECONDS
    due = Batch.objects.filter(
        state__in=Batch.ACTIVE_STATES, next_tick_at__lte=now - timedelta(seconds=late)
    ).values_list("id", flat=True)
    return {"ticked": sum(publish(DISPATCH_TASK, batch_id) for batch_id in list(due.order_by("id")[:limit]))}


# Cancel and progress --------------------------------------------------------------------


def batch_cancel(*, batch_id: int) -> bool:
    """
    Stop a batch: no pending recipient is handed over, and its messages still queued
    (handed over in the last tick, or held for the promotional window) fail with
    `batch_cancelled`. A message already with the provider goes on. False when the batch
    was already done or cancelled.
    """
    now = timezone.now()
    with transaction.atomic():
        moved = Batch.objects.filter(id=batch_id, state__in=Batch.ACTIVE_STATES).update(
            state=Batch.State.CANCELLED, finished_at=now, next_tick_at=None, updated_at=now
        )
        if not moved:
            return False
        _pending_cancel(batch_id, reason="the batch was cancelled")
        queued = Message.objects.filter(batch_recipient__batch_id=batch_id, status=Status.QUEUED)
        for message_id in queued.values_list("id", flat=True):
            message_fail(message_id=message_id, code="batch_cancelled", reason="The batch was cancelled.")
    logger.info("batch %s cancelled", batch_id)
    return True


MESSAGE_COLUMNS = {
    Status.QUEUED: "queued",
    Status.SENDING: "queued",
    Status.SENT: "sent",
    Status.DELIVERED: "delivered",
    Status.FAILED: "failed",
    Status.UNDELIVERED: "failed",
    Status.REJECTED: "failed",
    Status.REFUSED: "refused",
}


def batch_progress(*, batch_id: int) -> BatchProgress:
    """A batch's progress from two aggregate queries (recipients by state, their messages by status)."""
    counts = dict.fromkeys(BatchProgress.__dataclass_fields__, 0)
    by_state = BatchRecipient.objects.filter(batch_id=batch_id).values("state").annotate(n=Count("id"))
    for row in by_state.order_by():
        counts["total"] += row["n"]
        if row["state"] == BatchRecipient.State.PENDING:
            counts["queued"] += row["n"]
        elif row["state"] != BatchRecipient.State.MESSAGE:
            counts[row["state"]] += row["n"]
    by_status = Message.objects.filter(batch_recipient__batch_id=batch_id).values("status").annotate(n=Count("id"))
    for row in by_status.order_by():
        counts[MESSAGE_COLUMNS.get(row["status"], "queued")] += row["n"]
    return BatchProgress(**counts)

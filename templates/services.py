"""The DLT template store's API for the rest of smsgate: resolve, render, the promotional window, import."""

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from templates.content import RenderError, parse_content, render_parts, variable_max_length
from templates.importing import CsvRow, ImportFileError, category_from, read_rows, read_text, status_from
from templates.index import template_index
from templates.matcher import Match
from templates.models import Header, PrincipalEntity, Template

IST = ZoneInfo("Asia/Kolkata")

# The header category a template's first use creates a new header with (dlt_import); a
# numeric header is always promotional. Transactional and service both mean the portal's
# "others" header, which later rows of either kind may share (Template.HEADER_CATEGORIES).
HEADER_CATEGORY_FOR = {
    Template.Category.TRANSACTIONAL: Header.Category.TRANSACTIONAL,
    Template.Category.SERVICE_IMPLICIT: Header.Category.SERVICE,
    # Registered on "others" headers before the 2025 amendment.
    Template.Category.SERVICE_EXPLICIT: Header.Category.SERVICE,
    Template.Category.PROMOTIONAL: Header.Category.PROMOTIONAL,
    Template.Category.GOVERNMENT: Header.Category.GOVERNMENT,
}

__all__ = [
    "ImportFileError",
    "ImportReport",
    "ImportRow",
    "TemplateRenderError",
    "TemplateResolution",
    "promotional_window_next_start",
    "template_lookup",
    "template_render",
    "template_resolve",
    "templates_import_csv",
]


# Resolve ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateResolution:
    """
    The outcome of matching an outgoing text against the approved templates of its header.

    When `matched`, the IDs to submit with the message (`template_id` is the DLT template
    ID, `entity_id` the PE ID) and the values filling its placeholders, in order. When not,
    those are empty and `why` names the nearest template and where the text departs from it
    (`nearest_template_id`, `departs_at`: 0-based offset into the text, when known).
    """

    matched: bool
    template_id: str
    entity_id: str
    category: str
    promotional: bool
    values: list[str]
    why: str
    nearest_template_id: str = ""
    departs_at: int | None = None


def template_resolve(*, header: str, text: str) -> TemplateResolution:
    """
    The approved template `text` matches when sent from `header`, or why none does.

    Byte-for-byte on the fixed text, case-sensitive on the header; when several templates
    fit, the most specific wins (see templates.matcher). Reads the cached index: no query
    unless templates changed since the last call.
    """
    result = template_index().match(header=header, text=text)
    if isinstance(result, Match):
        row = result.row
        return TemplateResolution(
            matched=True,
            template_id=row.dlt_template_id,
            entity_id=row.entity_id,
            category=row.category,
            promotional=row.category in Template.PROMOTIONAL_CATEGORIES,
            values=list(result.values),
            why="",
        )
    return TemplateResolution(
        matched=False,
        template_id="",
        entity_id="",
        category="",
        promotional=False,
        values=[],
        why=result.why,
        nearest_template_id=result.nearest.dlt_template_id if result.nearest else "",
        departs_at=result.departure.offset if result.departure else None,
    )


# Render -----------------------------------------------------------------------------


class TemplateRenderError(ValidationError):
    """A template that cannot be rendered (unknown, inactive) or values that do not fit it."""


_VALUE_KEY_RE = re.compile(r"^(?:var)?([0-9]+)$", re.IGNORECASE)


def _values_in_order(values: list[str] | dict, count: int) -> list[str]:
    if not isinstance(values, dict):
        return [str(v) for v in values]
    by_position: dict[int, str] = {}
    for key, value in values.items():
        found = _VALUE_KEY_RE.match(str(key))
        if found is None or not 1 <= int(found.group(1)) <= count:
            raise TemplateRenderError(
                f"Unknown value key {key!r}: use positions 1 to {count} (1, '1' or 'var1').", code="bad_key"
            )
        by_position[int(found.group(1))] = str(value)
    missing = [str(n) for n in range(1, count + 1) if n not in by_position]
    if missing:
        raise TemplateRenderError(f"No value for position(s) {', '.join(missing)}.", code="missing_value")
    return [by_position[n] for n in range(1, count + 1)]


def template_lookup(*, header: str, reference: str) -> Template:
    """
    The approved template of `header` that `reference` names: its DLT template ID, or else
    its name (exact). TemplateRenderError "not_found" when none does (or the header is not
    one it may be sent from), "ambiguous" when several approved templates share the name.
    """
    reference = str(reference).strip()
    approved = Template.objects.filter(headers__sender_id=header, status=Template.Status.APPROVED)
    by_id = approved.filter(dlt_template_id=reference).first() if reference else None
    if by_id is not None:
        return by_id
    named = list(approved.filter(name=reference)[:2]) if reference else []
    if len(named) > 1:
        raise TemplateRenderError(
            f"Several approved templates of header {header} are named {reference!r}: use the DLT template ID.",
            code="ambiguous",
        )
    if not named:
        raise TemplateRenderError(
            f"No approved template of header {header} has the DLT ID or name {reference[:60]!r}.", code="not_found"
        )
    return named[0]


def template_render(*, dlt_template_id: str, values: list[str] | dict) -> str:
    """
    The text of an approved template with `values` in its placeholders.

    `values` is a list in placeholder order, or a dict keyed by 1-based position (1, "1"
    or "var1"). Raises TemplateRenderError for an unknown or inactive template, a wrong
    number of values, a value over DLT_VARIABLE_MAX_LENGTH or not of its placeholder's
    kind (a letter in {#numeric#}, a non-link in {#url#}). The result always matches the
    template.
    """
    template = Template.objects.filter(dlt_template_id=dlt_template_id).first()
    if template is None:
        raise TemplateRenderError(f"No template with DLT ID {dlt_template_id}.", code="not_found")
    if template.status != Template.Status.APPROVED:
        raise TemplateRenderError(f"Template {dlt_template_id} is inactive.", code="inactive")
    parts = parse_content(template.content)
    count = sum(1 for part in parts if not part.is_literal)
    try:
        return render_parts(parts, _values_in_order(values, count), variable_max_length())
    except RenderError as exc:
        raise TemplateRenderError(f"Template {dlt_template_id}: {exc}", code="bad_values") from exc


# Promotional window -----------------------------------------------------------------


def promotional_window_next_start(*, now: dt.datetime) -> dt.datetime | None:
    """
    None when promotional traffic may go out at `now` (09:00 to 21:00 IST by default), else
    the next opening as an aware UTC datetime.

    The hours come from DLT_PROMOTIONAL_HOURS (start, end) in IST; some aggregators use
    (10, 21). India keeps no daylight saving, so the window never moves. `now` must be aware.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("promotional_window_next_start needs an aware datetime (use django.utils.timezone.now()).")
    start_hour, end_hour = settings.DLT_PROMOTIONAL_HOURS
    local = now.astimezone(IST)
    opens = local.replace(hour=start_hour, minute=0, second=0, microsecond=0)
    closes = local.replace(hour=end_hour, minute=0, second=0, microsecond=0)
    if opens <= local < closes:
        return None
    if local >= closes:
        opens = (local + dt.timedelta(days=1)).replace(hour=start_hour, minute=0, second=0, microsecond=0)
    return opens.astimezone(dt.UTC)


# Import -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRow:
    """One CSV row's outcome: created, updated (reason "no change" when identical) or rejected with the reason."""

    CREATED = "created"
    UPDATED = "updated"
    REJECTED = "rejected"

    line: int
    template_id: str
    outcome: str
    reason: str = ""
    template_pk: int | None = None


@dataclass(frozen=True)
class ImportReport:
    rows: tuple[ImportRow, ...]
    dry_run: bool

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)

    @property
    def created(self) -> int:
        return self.count(ImportRow.CREATED)

    @property
    def updated(self) -> int:
        return self.count(ImportRow.UPDATED)

    @property
    def rejected(self) -> int:
        return self.count(ImportRow.REJECTED)

    def summary(self) -> str:
        prefix = "Dry run, nothing saved: would be " if self.dry_run else ""
        return f"{prefix}{self.created} created, {self.updated} updated, {self.rejected} rejected."


class _Rejected(Exception):
    pass


def _error_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def templates_import_csv(*, file, dry_run: bool) -> ImportReport:
    """
    Create or update templates (with their entities and headers) from a DLT portal CSV export.

    Each row is all or nothing and independent of the others: a broken row is rejected
    with the reason and the rest still load. A row is keyed on its DLT template ID; a
    repeat of an ID earlier in the file is rejected. Entities and headers are created on
    first sight: a new header is promotional when numeric or first seen with a promotional
    template, else the portal's "others" header, which carries transactional and service
    templates alike (its category is never inferred more narrowly than that). An approved
    row is rejected only when it is malformed (no ID, no content, a bad placeholder, an
    unknown category) or names a header of another entity or of a kind that cannot carry
    it (a transactional template on a promotional header).
    Pending or rejected portal statuses are not imported. With `dry_run` every row goes
    through the same checks and writes, all rolled back: the report is what a real run
    would do. Raises ImportFileError when the file cannot be read at all.
    """
    rows = read_rows(read_text(file))
    outcomes: list[ImportRow] = []
    seen: dict[str, int] = {}
    with transaction.atomic():
        for row in rows:
            if row.template_id in seen:
                outcomes.append(
                    ImportRow(
                        row.line,
                        row.template_id,
                        ImportRow.REJECTED,
                        f"duplicate: template {row.template_id} is already on line {seen[row.template_id]}",
                    )
                )
                continue
            if row.template_id:
                seen[row.template_id] = row.line
            try:
                with transaction.atomic():
                    outcomes.append(_import_row(row))
            except _Rejected as exc:
                outcomes.append(ImportRow(row.line, row.template_id, ImportRow.REJECTED, str(exc)))
            except ValidationError as exc:
                outcomes.append(ImportRow(row.line, row.template_id, ImportRow.REJECTED, _error_text(exc)))
        if dry_run:
            transaction.set_rollback(True)
    return ImportReport(rows=tuple(outcomes), dry_run=dry_run)


def _import_row(row: CsvRow) -> ImportRow:
    if not row.template_id:
        raise _Rejected("no template ID")
    if re.fullmatch(r"[0-9.]+[eE]\+?[0-9]+", row.template_id):
        raise _Rejected(f"template ID {row.template_id!r} was turned into a number by a spreadsheet; export as text")
    category = category_from(row.category)
    if category is None:
        raise _Rejected(f"unknown category {row.category!r}")
    status = status_from(row.status)
    if status is None:
        raise _Rejected(f"status {row.status!r} is not approved on the portal")
    if not row.content.strip():
        raise _Rejected("no template content")
    if not row.headers:
        raise _Rejected("no header: a template is matched by the header it is sent from")

    entity = PrincipalEntity.objects.filter(pe_id=row.entity_id).first()
    if entity is None:
        entity = PrincipalEntity(pe_id=row.entity_id, name=row.entity_name or f"PE {row.entity_id}")
        entity.full_clean()
        entity.save()

    template = Template.objects.filter(dlt_template_id=row.template_id).select_related("entity").first()
    created = template is None
    if created:
        template = Template(dlt_template_id=row.template_id)
    elif template.entity_id != entity.pk:
        raise _Rejected(f"template {row.template_id} belongs to entity {template.entity.pe_id}, not {row.entity_id}")
    before = None if created else (template.name, template.content, template.category, template.status)
    template.entity = entity
    template.name = row.name or template.name
    template.content = row.content
    template.category = category
    template.status = status
    template.full_clean()

    headers = [_header_for(sender_id, entity, category) for sender_id in row.headers]
    problems = template.header_errors(headers)
    if problems:
        raise _Rejected(" ".join(problems))
    old_headers = set() if created else set(template.headers.values_list("pk", flat=True))
    changed = created or before != (template.name, template.content, template.category, template.status)
    if changed:
        template.save()
    if old_headers != {h.pk for h in headers}:
        template.headers.set(headers)
        changed = True
    outcome = ImportRow.CREATED if created else ImportRow.UPDATED
    return ImportRow(row.line, row.template_id, outcome, "" if changed else "no change", template.pk)


def _header_for(sender_id: str, entity: PrincipalEntity, category: str) -> Header:
    # Exact, case-sensitive lookup: operators treat "ABCDEF" and "abcdef" as different headers.
    header = Header.objects.filter(sender_id=sender_id).first()
    if header is None:
        kind = Header.Category.PROMOTIONAL if sender_id.isdigit() else HEADER_CATEGORY_FOR[category]
        header = Header(sender_id=sender_id, entity=entity, category=kind)
        try:
            header.full_clean()
        except ValidationError as exc:
            raise _Rejected(f"header {sender_id!r}: {_error_text(exc)}") from exc
        header.save()
    return header

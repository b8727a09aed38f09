"""
Reading a DLT portal's template export (CSV) into plain rows; no database access.

Portals (Jio, Airtel, Vi, BSNL, SmartPing…) name their columns differently and change
them between releases, so columns are found by the names in COLUMN_NAMES, compared
case-insensitively and ignoring spaces, underscores and a trailing `*`.
"""

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from templates.models import Template

COLUMN_NAMES = {
    "template_id": ("template id", "dlt template id", "content template id", "templateid", "dlt te id", "te id"),
    "name": ("template name", "name", "template title"),
    "content": ("template content", "template message", "content", "message", "message content"),
    "headers": ("header", "sender id", "headers", "senderid", "header name", "sender ids"),
    # "Template Type" first: some portals also export a "Category" column naming the
    # business (Banking, Retail...), not the DLT category.
    "category": ("template type", "template category", "category", "content type", "type"),
    "status": ("status", "template status"),
    "entity_id": ("entity id", "pe id", "principal entity id", "peid", "entityid"),
    "entity_name": ("entity name", "pe name", "principal entity name"),
}
REQUIRED_COLUMNS = ("template_id", "content", "headers", "category", "entity_id")
# The csv module's own field limit (128 Ki characters by default, process-wide) is raised to
# this; a field longer still (a quote never closed swallows the rest of the file) is a broken
# export, reported as ImportFileError with its line.
MAX_FIELD_CHARS = 1_000_000

CATEGORY_NAMES = {
    "transactional": Template.Category.TRANSACTIONAL,
    "transaction": Template.Category.TRANSACTIONAL,
    "txn": Template.Category.TRANSACTIONAL,
    "service implicit": Template.Category.SERVICE_IMPLICIT,
    "service": Template.Category.SERVICE_IMPLICIT,
    "si": Template.Category.SERVICE_IMPLICIT,
    "service explicit": Template.Category.SERVICE_EXPLICIT,
    "se": Template.Category.SERVICE_EXPLICIT,
    "promotional": Template.Category.PROMOTIONAL,
    "promotion": Template.Category.PROMOTIONAL,
    "promo": Template.Category.PROMOTIONAL,
    "government": Template.Category.GOVERNMENT,
    "govt": Template.Category.GOVERNMENT,
}
APPROVED_STATUSES = frozenset({"", "approved", "approve", "active"})
INACTIVE_STATUSES = frozenset(
    {"inactive", "deactivated", "deactive", "disabled", "expired", "blocked", "blacklisted", "suspended", "deleted"}
)


class ImportFileError(ValueError):
    """The file as a whole cannot be read: not UTF-8, not CSV, or a required column is missing."""


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row; `line` is the line it starts on in the file (the column titles are line 1)."""

    line: int
    template_id: str
    name: str
    content: str
    headers: tuple[str, ...]
    category: str
    status: str
    entity_id: str
    entity_name: str


def _normalize(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.replace("\ufeff", "").strip().rstrip("*").strip().lower())


def read_text(file) -> str:
    """The file's text: a path, bytes, or an open file (binary or text). UTF-8, with or without a BOM."""
    if isinstance(file, str | Path):
        data = Path(file).read_bytes()
    elif isinstance(file, bytes | bytearray):
        data = bytes(file)
    else:
        data = file.read()
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"The file is not UTF-8 (byte {exc.start}); export it from the portal or Excel as 'CSV UTF-8'."
        ) from exc


def read_rows(text: str) -> list[CsvRow]:
    """Parse the CSV; ImportFileError names the required columns that are missing."""
    if not text.strip():
        raise ImportFileError("The file is empty.")
    first_line = text.split("\n", 1)[0]
    try:
        dialect = csv.Sniffer().sniff(first_line, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    # Only ever raised, never lowered: another reader in this process keeps at least its own limit.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        return _rows(reader)
    except csv.Error as exc:
        # Past an error the reader's position inside a quoted field is unknown: no later row can be trusted.
        raise ImportFileError(f"Line {reader.line_num}: the file is not readable CSV ({exc}).") from exc


def _rows(reader) -> list[CsvRow]:
    """The column titles found by name, then every non-blank data row."""
    titles = next(reader)
    positions: dict[str, int] = {}
    normalized = [_normalize(title) for title in titles]
    for field, names in COLUMN_NAMES.items():
        for name in names:
            if name in normalized:
                positions[field] = normalized.index(name)
                break
    missing = [field for field in REQUIRED_COLUMNS if field not in positions]
    if missing:
        wanted = "; ".join(" or ".join(repr(n.title()) for n in COLUMN_NAMES[f][:3]) for f in missing)
        raise ImportFileError(f"Missing column(s): {wanted}. Found: {', '.join(repr(t) for t in titles)}.")

    def cell(values: list[str], field: str) -> str:
        at = positions.get(field)
        return values[at] if at is not None and at < len(values) else ""

    rows = []
    start = reader.line_num + 1
    for values in reader:
        line, start = start, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        rows.append(
            CsvRow(
                line=line,
                # Excel keeps long numbers as text behind a leading apostrophe.
                template_id=cell(values, "template_id").strip().lstrip("'").strip(),
                name=cell(values, "name").strip(),
                # Content is kept exactly as exported: a trailing space is part of the template.
                content=cell(values, "content"),
                headers=tuple(h.strip() for h in cell(values, "headers").split(",") if h.strip()),
                category=cell(values, "category").strip(),
                status=cell(values, "status").strip(),
                entity_id=cell(values, "entity_id").strip().lstrip("'").strip(),
                entity_name=cell(values, "entity_name").strip(),
            )
        )
    return rows


def category_from(label: str) -> str | None:
    """Our Template.Category for a portal's category label, or None when unknown."""
    key = _normalize(label).replace("-", " ")
    key = re.sub(r"\s+(template|content)$", "", key)
    return CATEGORY_NAMES.get(key)


def status_from(label: str) -> str | None:
    """approved / inactive for a portal status, or None for one that is not approved (pending, rejected)."""
    key = _normalize(label)
    if key in APPROVED_STATUSES:
        return Template.Status.APPROVED
    if key in INACTIVE_STATUSES:
        return Template.Status.INACTIVE
    return None

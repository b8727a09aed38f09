"""
DLT template content: the placeholder syntax, what each placeholder accepts, rendering.

Pure code (no ORM), shared by model validation, the matcher and the renderer, so the three
can never disagree about what a placeholder means.

A content is fixed text with placeholders `{#var#}` (anything) and the purpose-tagged ones
TRAI now requires: `{#numeric#}`, `{#alphanumeric#}`, `{#url#}`, `{#urlott#}`, `{#cbn#}`
(call-back number) and `{#email#}`. Placeholder names are read case-insensitively
(`{#VAR#}` is `{#var#}`); the fixed text around them is compared byte for byte.
"""

import re
import unicodedata
from dataclasses import dataclass

from django.conf import settings

VAR = "var"
NUMERIC = "numeric"
ALPHANUMERIC = "alphanumeric"
URL = "url"
URLOTT = "urlott"
CBN = "cbn"
EMAIL = "email"
KINDS = (VAR, NUMERIC, ALPHANUMERIC, URL, URLOTT, CBN, EMAIL)

# What a staff member reads when a value is refused.
KIND_DESCRIPTIONS = {
    VAR: "any text",
    NUMERIC: "digits 0-9 only",
    ALPHANUMERIC: "letters, digits and spaces only",
    URL: "an http:// or https:// link",
    URLOTT: "an http:// or https:// link",
    CBN: "a phone number (6 to 15 digits, optional +, single spaces or hyphens)",
    EMAIL: "an e-mail address",
}

_PLACEHOLDER_RE = re.compile(r"\{#([A-Za-z]+)#\}")

# Whole-value patterns for the structured kinds. ASCII digits only: operators count a
# Devanagari digit as text, not as a number.
_URL_RE = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")
_CBN_RE = re.compile(r"\+?[0-9](?:[ -]?[0-9]){5,14}")
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_STRUCTURED = {URL: _URL_RE, URLOTT: _URL_RE, CBN: _CBN_RE, EMAIL: _EMAIL_RE}
POST_CHECKED_KINDS = frozenset({ALPHANUMERIC, URL, URLOTT, CBN, EMAIL})


class ContentError(ValueError):
    """A template content that is not valid DLT syntax; `offset` is where the problem starts."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


class RenderError(ValueError):
    """Values that cannot fill a template: wrong count, too long, or not of the placeholder's kind."""


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of a content: fixed text (`kind` is None) or a placeholder of `kind`."""

    kind: str | None
    literal: str = ""

    @property
    def is_literal(self) -> bool:
        return self.kind is None

    @property
    def token(self) -> str:
        return self.literal if self.kind is None else "{#" + self.kind + "#}"


def variable_max_length() -> int:
    """Longest value a placeholder takes: DLT_VARIABLE_MAX_LENGTH."""
    return settings.DLT_VARIABLE_MAX_LENGTH


def parse_content(content: str) -> tuple[Part, ...]:
    """
    Split a content into literal and placeholder parts, in order.

    Raises ContentError for an unknown placeholder name or a stray `{#` / `#}`, so a
    stored content always parses. Adjacent placeholders are allowed: it is how senders
    carry a value longer than one placeholder's limit.
    """
    parts: list[Part] = []
    position = 0
    for found in _PLACEHOLDER_RE.finditer(content):
        kind = found.group(1).lower()
        if kind not in KINDS:
            raise ContentError(
                f"Unknown placeholder {found.group(0)} at offset {found.start()}; "
                f"use one of {', '.join('{#' + k + '#}' for k in KINDS)}.",
                found.start(),
            )
        if found.start() > position:
            parts.append(_literal(content, position, found.start()))
        parts.append(Part(kind))
        position = found.end()
    if position < len(content):
        parts.append(_literal(content, position, len(content)))
    if not any(part.is_literal and part.literal.strip() for part in parts):
        raise ContentError("A template needs some fixed text besides its placeholders.", 0)
    return tuple(parts)


def _literal(content: str, start: int, end: int) -> Part:
    text = content[start:end]
    for marker in ("{#", "#}"):
        at = text.find(marker)
        if at >= 0:
            raise ContentError(
                f"Unbalanced placeholder: {marker!r} at offset {start + at} is not part of a {{#name#}} placeholder.",
                start + at,
            )
    return Part(None, text)


def placeholders(parts: tuple[Part, ...]) -> list[str]:
    """The placeholder kinds of a parsed content, in order (one per value)."""
    return [part.kind for part in parts if part.kind is not None]


# Combining marks (vowel signs, viramas) of the Latin diacritics and the Indic blocks, plus
# ZWJ/ZWNJ which Indic text uses inside words. Deliberately a few broad ranges (a class of
# every mark in Unicode makes each template's regex take a millisecond to compile); the
# matcher re-checks {#alphanumeric#} values exactly with value_error().
_INDIC_WORD_CLASS = "\\u0300-\\u036f\\u0900-\\u0dff\\u1cd0-\\u1cff\\ua8e0-\\ua8ff\\u200c\\u200d"


def _is_alphanumeric_char(char: str) -> bool:
    # Indic words are letters plus combining vowel signs and viramas, which str.isalnum() refuses,
    # and zero-width joiners.
    return char == " " or char.isalnum() or char in "\u200c\u200d" or unicodedata.category(char).startswith("M")


def char_allowed(kind: str, char: str) -> bool:
    """Whether `char` may appear in a value of `kind` (for the structured kinds: no whitespace)."""
    if kind == VAR:
        return True
    if kind == NUMERIC:
        return "0" <= char <= "9"
    if kind == ALPHANUMERIC:
        return _is_alphanumeric_char(char)
    return not char.isspace()


def value_error(kind: str, value: str, max_length: int) -> str:
    """Why `value` cannot fill a `{#kind#}` placeholder, or "" when it can."""
    if not value:
        return f"{{#{kind}#}} needs a value of at least 1 character"
    if len(value) > max_length:
        return f"{{#{kind}#}} takes at most {max_length} characters; the value has {len(value)}"
    pattern = _STRUCTURED.get(kind)
    if pattern is not None:
        ok = pattern.fullmatch(value) is not None
    else:
        ok = all(char_allowed(kind, char) for char in value)
    return "" if ok else f"{{#{kind}#}} takes {KIND_DESCRIPTIONS[kind]}; got {value!r}"


def kind_pattern(kind: str, max_length: int) -> str:
    """
    The regex group for one placeholder inside a template's compiled pattern.

    Bounded to `max_length` where a character class allows it. The values of the kinds in
    POST_CHECKED_KINDS must be re-checked with value_error() after a match: the structured
    ones for length, {#alphanumeric#} for its exact character set.
    """
    if kind == VAR:
        # Lazy: where a split is ambiguous, the earlier value is the shorter one.
        return f"(.{{1,{max_length}}}?)"
    if kind == NUMERIC:
        return f"([0-9]{{1,{max_length}}})"
    if kind == ALPHANUMERIC:
        return f"((?:[^\\W_]| |[{_INDIC_WORD_CLASS}]){{1,{max_length}}})"
    if kind in (URL, URLOTT):
        return r"(https?://[^\s/?#]+(?:[/?#]\S*?)?)"
    if kind == CBN:
        return r"(\+?[0-9](?:[ -]?[0-9]){5,14})"
    return r"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"


def compile_parts(parts: tuple[Part, ...], max_length: int) -> re.Pattern[str]:
    """One pattern for a whole content (use fullmatch): literals escaped, so `.` or `(` are plain text."""
    body = "".join(re.escape(p.literal) if p.is_literal else kind_pattern(p.kind, max_length) for p in parts)
    return re.compile(body, re.DOTALL)


def render_parts(parts: tuple[Part, ...], values: list[str], max_length: int) -> str:
    """Fill the placeholders in order; RenderError names every value that does not fit."""
    kinds = placeholders(parts)
    if len(values) != len(kinds):
        raise RenderError(f"The template has {len(kinds)} placeholder(s); {len(values)} value(s) were given.")
    problems = []
    for number, (kind, value) in enumerate(zip(kinds, values, strict=True), start=1):
        if not isinstance(value, str):
            value = str(value)
        reason = value_error(kind, value, max_length)
        if reason:
            problems.append(f"value {number}: {reason}")
    if problems:
        raise RenderError("; ".join(problems) + ".")
    filled = iter(str(v) for v in values)
    return "".join(p.literal if p.is_literal else next(filled) for p in parts)

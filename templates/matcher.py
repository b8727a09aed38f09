"""
Which approved DLT template a (header, text) pair matches, or why none does.

Pure code: the index is built from plain TemplateRow values (see templates.index for the
cached one built from the database) and no query runs while matching.

Rules, as operators scrub (docs/PROVIDERS.md, India DLT):
- fixed text matches byte for byte: no whitespace, case or punctuation tolerance; a
  regex character in a template is plain text;
- each placeholder takes 1 to `max_length` characters of its kind (templates.content);
- header lookup is case-sensitive.

When several templates match, the most specific wins: the one with more fixed
characters, then fewer placeholders, then the lowest DLT template ID (numerically), so
the choice is the same on every server whatever the database ids are.

Speed: templates are bucketed by header, then by the first KEY_LENGTH characters of
their leading fixed text and the last KEY_LENGTH of their trailing fixed text, and large
groups sharing both by a rare whole word of their fixed text. A text is tried only
against the templates whose keys it carries, most specific first, each with a regex
compiled on first use. A miss looks at a bounded pool of near templates (same keys,
neighbours in sorted leading text) to name the nearest one.
"""

import bisect
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from templates.content import (
    CBN,
    EMAIL,
    KIND_DESCRIPTIONS,
    POST_CHECKED_KINDS,
    URL,
    URLOTT,
    VAR,
    ContentError,
    Part,
    char_allowed,
    compile_parts,
    parse_content,
    value_error,
)

logger = logging.getLogger(__name__)

KEY_LENGTH = 16
# A miss names the nearest template among at most this many from each source (see _Bucket.near):
# bounded so a miss stays cheap with thousands of templates.
NEAREST_EACH = 12
# A group of templates sharing both keys is scanned in full up to this size, else sub-indexed by a word.
GROUP_SCAN_LIMIT = 16
_STRUCTURED_KINDS = frozenset({URL, URLOTT, CBN, EMAIL})
EXCERPT_RADIUS = 20


@dataclass(frozen=True, slots=True)
class TemplateRow:
    """What the matcher needs of one template; `headers` are sender IDs, exact case."""

    pk: int
    dlt_template_id: str
    entity_id: str
    name: str
    category: str
    content: str
    headers: tuple[str, ...]
    approved: bool = True


@dataclass(frozen=True, slots=True)
class Match:
    row: TemplateRow
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Departure:
    """
    Where a text leaves a template: `offset` into the text (0-based), what was expected there,
    the text around it, and how many of the template's fixed characters the text followed first.
    """

    offset: int
    reason: str
    excerpt: str
    followed: int = 0


@dataclass(frozen=True, slots=True)
class Miss:
    why: str
    nearest: TemplateRow | None = None
    departure: Departure | None = None


@dataclass(slots=True, eq=False)
class _Compiled:
    row: TemplateRow
    parts: tuple[Part, ...]
    literal_chars: int
    variables: int
    lead: str
    trail: str
    post_checked: tuple[tuple[int, str], ...]  # (value index, kind) re-checked after a regex match
    rank: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def pattern(self, max_length: int) -> re.Pattern[str]:
        # Compiled lazily: most templates of a large store are never tried in a process's lifetime.
        if self._pattern is None:
            self._pattern = compile_parts(self.parts, max_length)
        return self._pattern


def _compile_row(row: TemplateRow) -> _Compiled | None:
    try:
        parts = parse_content(row.content)
    except ContentError as exc:
        logger.warning("DLT template %s skipped by the matcher: %s", row.dlt_template_id, exc)
        return None
    lead = parts[0].literal if parts[0].is_literal else ""
    trail = parts[-1].literal if parts[-1].is_literal else ""
    kinds = [p.kind for p in parts if not p.is_literal]
    return _Compiled(
        row=row,
        parts=parts,
        literal_chars=sum(len(p.literal) for p in parts),
        variables=len(kinds),
        lead=lead,
        trail=trail,
        post_checked=tuple((i, k) for i, k in enumerate(kinds) if k in POST_CHECKED_KINDS),
    )


def _specificity(compiled: _Compiled) -> tuple:
    ident = compiled.row.dlt_template_id
    return (-compiled.literal_chars, compiled.variables, len(ident), ident, compiled.row.pk)


def _whole_words(compiled: _Compiled) -> set[str]:
    """
    Words of the fixed text that any matching text carries as whole space-separated words:
    bounded by spaces inside a literal, or by the start or end of the text.
    """
    words: set[str] = set()
    last = len(compiled.parts) - 1
    for index, part in enumerate(compiled.parts):
        if not part.is_literal:
            continue
        tokens = part.literal.split(" ")
        first_whole = 0 if index == 0 else 1
        last_whole = len(tokens) if index == last else len(tokens) - 1
        words.update(token for token in tokens[first_whole:last_whole] if token)
    return words


class _Group:
    """
    Templates sharing a leading and a trailing key, most specific first.

    A group larger than GROUP_SCAN_LIMIT (thousands of "Dear {#var#}, ... - ACME") is
    sub-indexed by each template's rarest whole word, so a text is tried only against the
    templates whose word it contains (plus the few that have no whole word).
    """

    __slots__ = ("by_word", "loose", "templates")

    def __init__(self, templates: list[_Compiled]):
        self.templates = templates
        self.by_word: dict[str, list[_Compiled]] | None = None
        self.loose: list[_Compiled] = []
        if len(templates) <= GROUP_SCAN_LIMIT:
            return
        words_of = {id(c): _whole_words(c) for c in templates}
        counts = Counter(word for words in words_of.values() for word in words)
        self.by_word = {}
        for compiled in templates:
            words = words_of[id(compiled)]
            if words:
                rarest = min(words, key=lambda w: (counts[w], -len(w), w))
                self.by_word.setdefault(rarest, []).append(compiled)
            else:
                self.loose.append(compiled)

    def candidates(self, words: set[str]) -> list[_Compiled]:
        if self.by_word is None:
            return self.templates
        found = list(self.loose)
        for word in words:
            found.extend(self.by_word.get(word, ()))
        found.sort(key=lambda c: c.rank)
        return found


class _Bucket:
    """The templates one header may carry, indexed by their leading and trailing fixed text."""

    def __init__(self, templates: list[_Compiled]):
        self.templates = templates  # most specific first
        # prefix key -> (suffix key lengths, suffix key -> group)
        self.affix: dict[str, tuple[tuple[int, ...], dict[str, _Group]]] = {}
        grouped: dict[str, dict[str, list[_Compiled]]] = {}
        for compiled in templates:
            grouped.setdefault(compiled.lead[:KEY_LENGTH], {}).setdefault(compiled.trail[-KEY_LENGTH:], []).append(
                compiled
            )
        for prefix, by_suffix in grouped.items():
            lengths = tuple(sorted({len(s) for s in by_suffix}, reverse=True))
            self.affix[prefix] = (lengths, {suffix: _Group(items) for suffix, items in by_suffix.items()})
        self.prefix_lengths = tuple(sorted({len(p) for p in self.affix}, reverse=True))
        # For a miss: templates in order of leading text, so the ones sharing most of the
        # text's beginning are neighbours of its insertion point.
        ordered = sorted(templates, key=lambda c: (c.lead, c.rank))
        self.leads = [c.lead for c in ordered]
        self.by_lead = ordered
        self.by_trail: dict[str, list[_Compiled]] = {}
        for compiled in templates:
            self.by_trail.setdefault(compiled.trail[-KEY_LENGTH:], []).append(compiled)
        self.trail_lengths = tuple(sorted({len(s) for s in self.by_trail}, reverse=True))
        # For a miss whose beginning or end is spoiled: templates by their rarest whole word in this bucket.
        self.by_word = _Group(templates)

    def candidates(self, text: str) -> list[_Compiled]:
        """Templates whose leading and trailing key the text carries, most specific first."""
        size = len(text)
        words: set[str] | None = None
        found: list[list[_Compiled]] = []
        for prefix_length in self.prefix_lengths:
            if prefix_length > size:
                continue
            entry = self.affix.get(text[:prefix_length])
            if entry is None:
                continue
            suffix_lengths, by_suffix = entry
            for suffix_length in suffix_lengths:
                if suffix_length > size:
                    continue
                group = by_suffix.get(text[size - suffix_length :] if suffix_length else "")
                if group is None:
                    continue
                if group.by_word is not None and words is None:
                    words = set(text.split(" "))
                found.append(group.candidates(words))
        if len(found) == 1:
            return found[0]
        return sorted((c for group in found for c in group), key=lambda c: c.rank)

    def near(self, text: str, tried: list[_Compiled]) -> list[_Compiled]:
        """
        A bounded pool of templates likely to be nearest to a text that matched none: those
        sharing its leading and trailing keys, those whose rarest word it contains, its
        neighbours in sorted leading text (they share the longest beginning with it), and
        those sharing its trailing key.
        """
        pool: dict[int, _Compiled] = {}

        def take(items: Iterable[_Compiled], count: int) -> None:
            for compiled in items:
                if count <= 0:
                    return
                if id(compiled) not in pool:
                    pool[id(compiled)] = compiled
                    count -= 1

        take(tried, NEAREST_EACH)
        if self.by_word.by_word is not None:
            take(self.by_word.candidates(set(text.split(" "))), NEAREST_EACH)
        at = bisect.bisect_left(self.leads, text)
        take(self.by_lead[max(0, at - NEAREST_EACH // 2) : at + NEAREST_EACH // 2], NEAREST_EACH)
        size = len(text)
        for length in self.trail_lengths:
            if 0 < length <= size:
                take(self.by_trail.get(text[size - length :], ()), NEAREST_EACH)
        if not pool:
            take(self.templates, NEAREST_EACH)
        return list(pool.values())


class MatchIndex:
    """
    An immutable index of templates by header, built once and shared across requests.

    `rows` may mix approved and inactive templates: inactive ones never match, but a miss
    says so when the text fits one of them (DLT 631). `inactive_headers` are registered
    headers that are switched off (DLT 621), named as such in a miss.
    """

    def __init__(self, rows: Iterable[TemplateRow], *, max_length: int, inactive_headers: Iterable[str] = ()):
        self.max_length = max_length
        self.inactive_headers = frozenset(inactive_headers)
        compiled = [c for c in map(_compile_row, rows) if c is not None]
        compiled.sort(key=_specificity)
        for rank, item in enumerate(compiled):
            item.rank = rank
        approved: dict[str, list[_Compiled]] = {}
        inactive: dict[str, list[_Compiled]] = {}
        for item in compiled:
            target = approved if item.row.approved else inactive
            for header in item.row.headers:
                target.setdefault(header, []).append(item)
        self._buckets = {header: _Bucket(items) for header, items in approved.items()}
        self._inactive = {header: _Bucket(items) for header, items in inactive.items()}
        known = set(self._buckets) | set(self._inactive) | self.inactive_headers
        self._folded: dict[str, list[str]] = {}
        for header in sorted(known):
            self._folded.setdefault(header.casefold(), []).append(header)
        self.size = len(compiled)

    def match(self, *, header: str, text: str) -> Match | Miss:
        """The most specific approved template of `header` that `text` fits, or a Miss saying why none does."""
        bucket = self._buckets.get(header)
        tried: list[_Compiled] = []
        if bucket is not None:
            tried = bucket.candidates(text)
            for compiled in tried:
                values = self._fit(compiled, text)
                if values is not None:
                    return Match(row=compiled.row, values=values)
        return self._miss(header, text, bucket, tried)

    def _fit(self, compiled: _Compiled, text: str) -> tuple[str, ...] | None:
        found = compiled.pattern(self.max_length).fullmatch(text)
        if found is None:
            return None
        values = found.groups()
        for position, kind in compiled.post_checked:
            if value_error(kind, values[position], self.max_length):
                return None
        return values

    def _miss(self, header: str, text: str, bucket: _Bucket | None, tried: list[_Compiled]) -> Miss:
        inactive = self._inactive.get(header)
        if inactive is not None:
            for compiled in inactive.candidates(text):
                if self._fit(compiled, text) is not None:
                    return Miss(
                        why=f"The text fits template {_label(compiled.row)}, but that template is inactive "
                        "(DLT 631): reactivate it on the DLT portal and here, or use another template.",
                        nearest=compiled.row,
                    )
        if bucket is None:
            return Miss(why=self._header_problem(header))
        # Nearest: the template whose fixed text the message follows furthest, then furthest into
        # the text, then the most specific. A template with less fixed text than the best so far
        # cannot win, so most of the pool costs one comparison.
        nearest: tuple[tuple[int, int, int], _Compiled, _Best] | None = None
        for candidate in sorted(bucket.near(text, tried), key=lambda c: c.rank):
            if nearest is not None and candidate.literal_chars < nearest[0][0]:
                continue
            found = _departure(candidate, text, self.max_length)
            key = (found.followed, found.offset, -candidate.rank)
            if nearest is None or key > nearest[0]:
                nearest = (key, candidate, found)
        assert nearest is not None
        _, compiled, found = nearest
        departure = Departure(
            found.offset,
            _word(found.reason, text, found.offset, self.max_length),
            _excerpt(text, found.offset),
            found.followed,
        )
        why = (
            f"No approved template of header {header} matches. Nearest: {_label(compiled.row)}; "
            f"the text departs from it at offset {departure.offset}: {departure.reason}. "
            f"Here: {departure.excerpt}"
        )
        return Miss(why=why, nearest=compiled.row, departure=departure)

    def _header_problem(self, header: str) -> str:
        if header in self.inactive_headers:
            return f"Header {header} is inactive (DLT 621): it carries no messages."
        if header in self._inactive:
            return f"Header {header} has no approved template: all its templates are inactive."
        others = [h for h in self._folded.get(header.casefold(), []) if h != header]
        if others:
            return (
                f"Header {header!r} is not registered; headers are case-sensitive (DLT 620) and "
                f"{' / '.join(repr(h) for h in others)} is."
            )
        return f"Header {header!r} has no approved template here (DLT 620: header not found)."


def _label(row: TemplateRow) -> str:
    return f"{row.dlt_template_id} ({row.name!r})" if row.name else row.dlt_template_id


def _excerpt(text: str, offset: int) -> str:
    """The text around `offset`, with ▶ where it departs."""
    start = max(0, offset - EXCERPT_RADIUS)
    before = ("…" if start else "") + text[start:offset]
    after = text[offset : offset + EXCERPT_RADIUS] + ("…" if offset + EXCERPT_RADIUS < len(text) else "")
    return f"«{before}▶{after}»"


def _show(fragment: str, limit: int = 24) -> str:
    return repr(fragment if len(fragment) <= limit else fragment[:limit] + "…")


def _common_prefix(literal: str, text: str, start: int) -> int:
    if text[start : start + 1] != literal[:1]:
        return 0
    count = 0
    for expected, got in zip(literal, text[start : start + len(literal)], strict=False):
        if expected != got:
            break
        count += 1
    return count


def _value_ranges(kind: str, text: str, start: int, max_length: int) -> list[tuple[int, int]]:
    """The end offsets (as inclusive ranges) at which a value of `kind` starting at `start` is acceptable."""
    limit = min(len(text), start + max_length)
    if kind == VAR:
        return [(start + 1, limit)] if limit > start else []
    if kind in _STRUCTURED_KINDS:
        ends = [end for end in range(start + 1, limit + 1) if not value_error(kind, text[start:end], max_length)]
        return [(end, end) for end in ends]
    end = start
    while end < limit and char_allowed(kind, text[end]):
        end += 1
    return [(start + 1, end)] if end > start else []


class _Best:
    """
    The most telling departure seen so far: the one after the most fixed text followed, then
    the furthest into the text, then by priority. The reason is kept as a tuple and worded
    only once, for the winner: most departures computed for a miss are discarded.
    """

    __slots__ = ("followed", "offset", "priority", "reason")

    def __init__(self):
        self.followed, self.offset, self.priority, self.reason = -1, -1, -1, ()

    def note(self, followed: int, offset: int, priority: int, *reason) -> None:
        if (followed, offset, priority) > (self.followed, self.offset, self.priority):
            self.followed, self.offset, self.priority, self.reason = followed, offset, priority, reason


def _departure(compiled: _Compiled, text: str, max_length: int) -> _Best:
    """
    Where `text` leaves `compiled`, trying every way the values could be split.

    Of all the splits, the one that follows the most fixed text wins, then the one that gets
    furthest into the text: a placeholder's span alone is no evidence (a `{#var#}` would
    swallow anything), the fixed text after it is. The count of fixed characters followed
    also ranks templates when naming the nearest one. Used only on a miss, on a bounded pool.

    States are (lo, hi, followed, start): the text offsets lo..hi are reachable after
    `followed` fixed characters, by a value that began at `start` (-1 after fixed text).
    Fixed text after a value is searched with str.find over the whole range at once.
    """
    size = len(text)
    states = [(0, 0, 0, -1)]
    best = _Best()
    value_number = 0
    previous: Part | None = None
    for part in compiled.parts:
        reached: list[tuple[int, int, int, int]] = []
        if part.is_literal:
            _literal_step(part.literal, text, states, previous, value_number, max_length, best, reached)
        else:
            value_number += 1
            points: dict[int, int] = {}
            for lo, hi, followed, _ in states:
                for position in range(lo, hi + 1):
                    points[position] = max(points.get(position, -1), followed)
            for position, followed in sorted(points.items()):
                ranges = _value_ranges(part.kind, text, position, max_length)
                reached.extend((lo, hi, followed, position) for lo, hi in ranges)
                if not ranges:
                    best.note(followed, position, 0, "bad_value", value_number, part)
        previous = part
        states = reached
        if not states:
            break
    else:
        if any(lo <= size <= hi for lo, hi, _, _ in states):
            # It fits: only a value refused by the exact re-check after the regex can have stopped it.
            best.note(compiled.literal_chars, size, 0, "post_check")
            return best
        lo, last, followed, start = max(states, key=lambda s: (s[1], s[2]))
        if previous is not None and not previous.is_literal and last == start + max_length and last < size:
            best.note(followed, last, 0, "last_too_long", value_number, previous, size - start)
        else:
            best.note(followed, last, 0, "trailing")
    return best


def _literal_step(literal, text, states, previous, value_number, max_length, best: _Best, reached) -> None:
    """Advance every state over fixed text `literal`, noting why the states it cannot follow fail."""
    size = len(text)
    width = len(literal)
    first = literal[0]
    for lo, hi, followed, start in states:
        found = False
        at = text.find(literal, lo, hi + width)
        while at != -1:
            reached.append((at + width, at + width, followed + width, -1))
            found = True
            at = text.find(literal, at + 1, hi + width)
        if start < 0:
            # Right after fixed text: the first differing character is where the text departs.
            if not found:
                common = _common_prefix(literal, text, lo)
                best.note(followed + common, lo + common, 0, "literal", literal[common:])
            continue
        # After a value: fixed text that begins to match shows where the text departs.
        at = text.find(first, lo, hi + 1)
        while at != -1:
            common = _common_prefix(literal, text, at)
            if common < width:
                best.note(followed + common, at + common, 0, "literal", literal[common:])
            at = text.find(first, at + 1, hi + 1)
        if found:
            continue
        later = text.find(literal, start + 1)
        if later > start + max_length and all(char_allowed(previous.kind, c) for c in text[start:later]):
            # The fixed text is there, just too far away: the value is too long.
            best.note(followed + width, start + max_length, 1, "too_long", value_number, previous, text[start:later])
        elif hi >= size:
            best.note(followed, size, 0, "literal", literal)
        elif previous.kind != VAR:
            # A typed value stops at the first character not of its kind: that is where the text departs.
            best.note(followed, hi, 0, "typed_stop", value_number, previous, literal)
        else:
            best.note(followed, start, 0, "never", value_number, previous, literal)


def _word(reason: tuple, text: str, offset: int, max_length: int) -> str:
    """The human wording of a departure noted by _Best at `offset`."""
    what, *args = reason
    rest = text[offset:]
    if what == "literal":
        (expected,) = args
        if not rest:
            return f"the text ends where the template continues with {_show(expected)}"
        return f"expected {_show(expected)}, found {_show(rest)}"
    if what == "post_check":
        return "a value is of the wrong kind or over the length limit"
    if what == "trailing":
        return f"the template ends here but the text goes on with {_show(rest)}"
    number, part = args[0], args[1]
    if what == "bad_value":
        if not rest:
            return f"the text ends where value {number} ({part.token}) should start"
        return f"value {number} ({part.token}) takes {KIND_DESCRIPTIONS[part.kind]}; found {_show(rest)}"
    if what == "too_long":
        value = args[2]
        return (
            f"value {number} ({part.token}) would be {len(value)} characters ({_show(value, 40)}); "
            f"the limit is {max_length}"
        )
    if what == "typed_stop":
        found = f"expected {_show(args[2])} after value {number}, found {_show(rest)}"
        # A letter or digit there was probably meant as part of the value: say what the value takes.
        return f"{found} ({part.token} takes {KIND_DESCRIPTIONS[part.kind]})" if rest[:1].isalnum() else found
    if what == "never":
        return (
            f"after value {number} ({part.token}, 1 to {max_length} characters) the template continues "
            f"with {_show(args[2])}, which the text does not have"
        )
    return f"the last value ({part.token}) takes at most {max_length} characters, but {args[2]} follow"

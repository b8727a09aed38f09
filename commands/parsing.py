"""Turn the text of an inbound SMS into a code and the argument text after it."""

import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class ParsedText:
    code: str  # upper-case; digits in ASCII; "" for an empty message
    args: str  # the rest of the message, whitespace-trimmed


def ascii_digits(word: str) -> str:
    """Map decimal digits of any script (१, ١, １, ...) to ASCII; leave other characters alone."""
    out = []
    for char in word:
        value = unicodedata.decimal(char, None)
        out.append(str(value) if value is not None else char)
    return "".join(out)


def parse_text(text: str) -> ParsedText:
    """
    Split a message into its first word (the code or keyword) and the rest.

    Phones in India and elsewhere type digits in their own script, so "१" is code "1".
    NFKC folds full-width letters and compatibility forms ("ＢＡＬ" -> "BAL").
    """
    normalized = unicodedata.normalize("NFKC", text or "").strip()
    if not normalized:
        return ParsedText(code="", args="")
    first, *rest = normalized.split(maxsplit=1)
    return ParsedText(code=ascii_digits(first).upper(), args=rest[0].strip() if rest else "")

"""
SMS encoding and segment counting (GSM 03.38 / UCS-2), as carriers bill them.

A text that fits the GSM-7 alphabet is counted in septets, the extension table's
characters (^ { } \\ [ ~ ] | € and form feed) taking two. One character outside it
makes the whole text UCS-2, counted in UTF-16 code units (an emoji is two). A single
SMS holds 160 septets or 70 units; a part of a multipart SMS 153 or 67, and an escape
pair or a surrogate pair is never split across parts.
"""

from dataclasses import dataclass

# The basic table in code order (0x00-0x7F); 0x1B is the escape to the extension table.
GSM7_BASIC_CODES = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_BASIC = frozenset(GSM7_BASIC_CODES) - {"\x1b"}
# The extension table: each character is sent as ESC and this code.
GSM7_EXTENSION_CODES = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
GSM7_EXTENSION = frozenset(GSM7_EXTENSION_CODES)
GSM7_ESCAPE = 0x1B

GSM7 = "gsm7"
UCS2 = "ucs2"
SINGLE_CAPACITY = {GSM7: 160, UCS2: 70}
PART_CAPACITY = {GSM7: 153, UCS2: 67}
CUT_MARKER = {GSM7: "...", UCS2: "…"}


@dataclass(frozen=True)
class SegmentInfo:
    encoding: str  # "gsm7" or "ucs2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def encoding_of(text: str) -> str:
    return GSM7 if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else UCS2


def _char_units(char: str, encoding: str) -> int:
    if encoding == GSM7:
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def _parts(text: str, encoding: str) -> list[str]:
    """Split into multipart parts; a character that does not fit whole starts the next part."""
    capacity = PART_CAPACITY[encoding]
    parts, current, used = [], [], 0
    for char in text:
        size = _char_units(char, encoding)
        if used + size > capacity:
            parts.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += size
    if current:
        parts.append("".join(current))
    return parts


def segment_info(text: str) -> SegmentInfo:
    encoding = encoding_of(text)
    units = sum(_char_units(c, encoding) for c in text)
    if units <= SINGLE_CAPACITY[encoding]:
        return SegmentInfo(encoding=encoding, units=units, segments=1)
    return SegmentInfo(encoding=encoding, units=units, segments=len(_parts(text, encoding)))


def truncate_to_segments(text: str, limit: int) -> tuple[str, bool]:
    """
    Cut `text` to at most `limit` segments at a segment boundary, ending with a marker
    in the text's own encoding ("..." in GSM-7, so the cut does not turn it into UCS-2).
    Returns (text, was_cut).
    """
    if segment_info(text).segments <= limit:
        return text, False
    encoding = encoding_of(text)
    marker = CUT_MARKER[encoding]
    if limit == 1:
        budget = SINGLE_CAPACITY[encoding] - sum(_char_units(c, encoding) for c in marker)
        kept, used = [], 0
        for char in text:
            size = _char_units(char, encoding)
            if used + size > budget:
                break
            kept.append(char)
            used += size
        return "".join(kept).rstrip() + marker, True
    parts = _parts(text, encoding)[:limit]
    last = parts[-1]
    marker_units = sum(_char_units(c, encoding) for c in marker)
    while last and sum(_char_units(c, encoding) for c in last) + marker_units > PART_CAPACITY[encoding]:
        last = last[:-1]
    parts[-1] = last.rstrip() + marker
    return "".join(parts), True


def message_parts(text: str) -> tuple[str, list[str]]:
    """
    The encoding of `text` and the texts of the SMS it is sent as: itself when it fits one,
    else multipart parts of at most 153 septets or 67 units, never cutting an escape pair
    or a surrogate pair (an SMPP client puts each behind its own UDH).
    """
    encoding = encoding_of(text)
    if sum(_char_units(c, encoding) for c in text) <= SINGLE_CAPACITY[encoding]:
        return encoding, [text]
    return encoding, _parts(text, encoding)


def gsm7_encode(text: str) -> bytes:
    """GSM-7 text as unpacked septets, one per octet (SMPP data_coding 0); extension characters take two."""
    out = bytearray()
    for char in text:
        if char in GSM7_EXTENSION_CODES:
            out += bytes((GSM7_ESCAPE, GSM7_EXTENSION_CODES[char]))
        else:
            code = GSM7_BASIC_CODES.find(char)
            if code < 0 or char == "\x1b":
                raise ValueError(f"{char!r} is not in the GSM-7 alphabet")
            out.append(code)
    return bytes(out)


_GSM7_EXTENSION_CHARS = {code: char for char, code in GSM7_EXTENSION_CODES.items()}


def gsm7_decode(data: bytes) -> str:
    """Unpacked GSM-7 septets to text; an unknown escape code reads as a space, as handsets show it."""
    chars, escaped = [], False
    for octet in data:
        code = octet & 0x7F
        if escaped:
            chars.append(_GSM7_EXTENSION_CHARS.get(code, " "))
            escaped = False
        elif code == GSM7_ESCAPE:
            escaped = True
        else:
            chars.append(GSM7_BASIC_CODES[code])
    return "".join(chars)

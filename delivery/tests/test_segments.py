import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery.segments import GSM7_BASIC, GSM7_EXTENSION, segment_info, truncate_to_segments

# The checks of docs/PROVIDERS.md, Encoding and segments.
VECTORS = [
    ("A" * 160, "gsm7", 1),
    ("A" * 161, "gsm7", 2),
    ("A" * 306, "gsm7", 2),
    ("A" * 307, "gsm7", 3),
    ("€" * 80, "gsm7", 1),
    ("€" * 81, "gsm7", 2),
    ("é" * 160, "gsm7", 1),
    ("á", "ucs2", 1),
    ("क" * 70, "ucs2", 1),
    ("क" * 71, "ucs2", 2),
    ("क" * 134, "ucs2", 2),
    ("क" * 135, "ucs2", 3),
    ("😀" * 35, "ucs2", 1),
    ("😀" * 36, "ucs2", 2),
    ("😀" * 67, "ucs2", 3),
    ("’", "ucs2", 1),
    ("`", "ucs2", 1),
    ("", "gsm7", 1),
]


@pytest.mark.parametrize("text,encoding,segments", VECTORS)
def test_known_vectors(text, encoding, segments):
    info = segment_info(text)
    assert (info.encoding, info.segments) == (encoding, segments)


GSM_CHARS = sorted(GSM7_BASIC | GSM7_EXTENSION)


@given(st.text(alphabet=GSM_CHARS, max_size=1200))
def test_gsm_text_segments_match_the_septet_arithmetic(text):
    info = segment_info(text)
    septets = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
    assert info.encoding == "gsm7"
    assert info.units == septets
    if septets <= 160:
        assert info.segments == 1
    else:
        # Parts hold 153 septets, one less when an escape pair would straddle a boundary.
        assert -(-septets // 153) <= info.segments <= -(-septets // 152)


@given(st.text(min_size=1, max_size=600).filter(lambda t: any(c not in GSM7_BASIC | GSM7_EXTENSION for c in t)))
def test_any_non_gsm_character_makes_it_ucs2_counted_in_utf16_units(text):
    info = segment_info(text)
    units = len(text.encode("utf-16-le")) // 2
    assert info.encoding == "ucs2"
    assert info.units == units
    if units <= 70:
        assert info.segments == 1
    else:
        assert -(-units // 67) <= info.segments <= -(-units // 66)


@given(st.text(max_size=2000), st.integers(min_value=1, max_value=6))
def test_truncation_fits_the_limit_and_keeps_the_encoding(text, limit):
    cut, was_cut = truncate_to_segments(text, limit)
    assert segment_info(cut).segments <= limit
    if was_cut:
        assert segment_info(cut).encoding == segment_info(text).encoding
        assert cut.endswith("..." if segment_info(text).encoding == "gsm7" else "…")
    else:
        assert cut == text

import pytest

from commands.parsing import ParsedText, parse_text


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1", ParsedText("1", "")),
        ("  2  ", ParsedText("2", "")),
        ("bal", ParsedText("BAL", "")),
        ("Bal now please", ParsedText("BAL", "now please")),
        ("3 my sim is blocked", ParsedText("3", "my sim is blocked")),
        ("1\nAsha", ParsedText("1", "Asha")),
        ("१", ParsedText("1", "")),  # Devanagari
        ("١٢", ParsedText("12", "")),  # Arabic-Indic
        ("１", ParsedText("1", "")),  # full-width
        ("৩ help", ParsedText("3", "help")),  # Bengali
        ("ＢＡＬ", ParsedText("BAL", "")),  # full-width letters
        ("", ParsedText("", "")),
        ("   \t\n", ParsedText("", "")),
        ("😀😀", ParsedText("😀😀", "")),
    ],
)
def test_first_word_is_the_code_and_the_rest_is_args(text, expected):
    assert parse_text(text) == expected

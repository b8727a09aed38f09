"""Phone numbers as aggregators write them, normalised to E.164; anything not a real number is refused."""

import phonenumbers
import pytest

from delivery.phones import InvalidPhoneNumber, to_e164


@pytest.mark.parametrize(
    "raw,region,expected",
    [
        ("+919876543210", "IN", "+919876543210"),
        ("919876543210", "IN", "+919876543210"),  # Plivo and Sinch leave the "+" off
        ("09876543210", "IN", "+919876543210"),
        ("9876543210", "IN", "+919876543210"),
        (" +91 98765 43210 ", "IN", "+919876543210"),
        ("+12025550123", "IN", "+12025550123"),
        ("12025550123", "IN", "+12025550123"),
        ("(202) 555-0123", "US", "+12025550123"),
    ],
)
def test_numbers_are_normalised_to_e164(raw, region, expected):
    assert to_e164(raw, region=region) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "+10000000000",  # the right length for North America, but area code 000 does not exist
        "10000000000",
        "+447700900123",  # UK mobile length, in Ofcom's range reserved for drama: never assigned
        "+919000",  # too short
    ],
)
def test_possible_but_invalid_numbers_are_refused(raw):
    # given: no such number exists (the first three have a plausible length for their country)
    parsed = phonenumbers.parse("+" + raw.lstrip("+"), None)
    assert not phonenumbers.is_valid_number(parsed)

    # then
    with pytest.raises(InvalidPhoneNumber):
        to_e164(raw, region="IN")


@pytest.mark.parametrize("raw", ["", "   ", "abc", "+", "12345"])
def test_text_that_is_no_number_is_refused(raw):
    with pytest.raises(InvalidPhoneNumber):
        to_e164(raw, region="IN")

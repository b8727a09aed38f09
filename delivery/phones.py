"""Phone numbers: everything stored is E.164."""

from functools import lru_cache

import phonenumbers


class InvalidPhoneNumber(ValueError):
    pass


# A number's parse is the same every time (the region is a setting): recent ones are kept,
# as a subscriber's next SMS comes soon; what is not a number is parsed again each time.
@lru_cache(maxsize=4096)
def to_e164(raw: str, *, region: str) -> str:
    """
    Normalise a number as an aggregator sends it ("+919876543210", "919876543210",
    "09876543210") to E.164. Bare digits longer than a national number are read as
    international (Plivo and Sinch leave the "+" off).
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("empty phone number")
    candidates = [text]
    digits = text.lstrip("+")
    if not text.startswith("+") and digits.isdigit() and len(digits) > 10:
        candidates.insert(0, "+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidPhoneNumber(f"not a valid phone number: {text[:30]!r}")

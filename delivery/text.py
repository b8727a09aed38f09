"""Make text from the outside safe to store."""

from typing import Any


def clean_text(value: str) -> str:
    """Drop NUL (PostgreSQL refuses it) and replace lone surrogates (not encodable as UTF-8)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def clean_payload(value: Any) -> Any:
    """clean_text applied through a decoded JSON value, keys included."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_payload(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_payload(v) for v in value]
    return value

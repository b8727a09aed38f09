"""
Secrets out of every text we store or log.

A secret is declared by the code that reads it: a provider declares the settings it
reads (`Provider.SECRET_SETTINGS`, declared here when the provider registry is built),
and code that reads a secret from the environment at run time does it through
`env_secret`, which declares the variable as it reads it. `redact` masks the current
value of every declared secret wherever it appears.

This module imports no other module of the project, so anything may use it.
"""

import os
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

from django.conf import settings

MASK = "********"
# Headers that carry a credential for any provider, whatever their value (Basic auth
# equals no secret): masked by name.
CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie")
# Shorter values would mask ordinary text ("1", "abc"); nothing that short is a real secret.
MIN_SECRET_LENGTH = 4

_secret_settings: set[str] = set()
_secret_env: set[str] = set()


def secret_settings_declare(*names: str) -> None:
    """Settings (django.conf.settings attributes) whose values are secrets."""
    _secret_settings.update(names)


def secret_env_declare(*names: str) -> None:
    """Environment variables whose values are secrets."""
    _secret_env.update(names)


def env_secret(name: str) -> str:
    """The environment variable `name` ("" when unset), declared as a secret so it is masked from now on."""
    secret_env_declare(name)
    return os.environ.get(name, "")


def declared_secret_names() -> tuple[frozenset[str], frozenset[str]]:
    """(setting names, environment variable names) declared as secrets so far."""
    return frozenset(_secret_settings), frozenset(_secret_env)


def secret_values() -> list[str]:
    """
    Every declared secret's value now, as written and URL-encoded (a secret in a query
    string or a connection error's URL is encoded), longest first so a secret
    containing another is masked whole.
    """
    values = {str(getattr(settings, name, "") or "") for name in _secret_settings}
    values.update(os.environ.get(name, "") for name in _secret_env)
    return list(_forms_of(frozenset(values)))


def secret_forms(values: Iterable[str]) -> list[str]:
    """`values` as written and URL-encoded, longest first, the too-short ones left out: what `redact` takes."""
    return list(_forms_of(frozenset(values)))


@lru_cache(maxsize=64)
def _forms_of(values: frozenset[str]) -> tuple[str, ...]:
    # Every log line and stored webhook asks; the values change only when a secret does.
    forms = {form for value in values if value for form in (value, quote(value, safe=""), quote_plus(value))}
    return tuple(sorted((v for v in forms if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every secret value replaced by MASK."""
    for secret in secret_values() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


# Query parameters whose values are credentials whatever their value: a wrong token
# sent by a stranger is not a declared secret, yet it must not reach a log either.
SECRET_QUERY_PARAM = re.compile(
    r"([?&;](?:[^=&;\s\"']*?)(?:token|key|secret|signature|auth|password|passwd|pwd)[^=&;\s\"']*=)[^&;\s\"']*",
    re.IGNORECASE,
)


def redact_query(text: str) -> str:
    """`text` (a URL, a path or a request line) with the values of token-like query parameters masked."""
    return SECRET_QUERY_PARAM.sub(lambda match: match.group(1) + MASK, text)


# E.164 numbers (+ and 8 to 15 digits) and bare runs of 10 to 15 digits, as aggregators
# write subscriber numbers; not inside a longer word or number.
PHONE_NUMBER = re.compile(r"(?<![\w+])(\+\d{8,15}|\d{10,15})(?!\w)")


def phones_mask(text: str) -> str:
    """`text` with phone numbers masked but their last four digits (`+919876543210` -> `+91******3210`)."""

    def mask(match: re.Match) -> str:
        number = match.group(1)
        if number.startswith("+"):
            return number[:3] + "*" * (len(number) - 7) + number[-4:]
        return "*" * (len(number) - 4) + number[-4:]

    return PHONE_NUMBER.sub(mask, text)


def redact_payload(value: Any, secrets: list[str] | None = None) -> Any:
    """`redact` through a decoded JSON value (a stored webhook payload), keys included."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact(str(k), secrets): redact_payload(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_payload(v, secrets) for v in value]
    return value

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

from django.conf import settings

MASK = "********"
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
    """Every declared secret's value now, longest first (so a secret containing another is masked whole)."""
    values = {str(getattr(settings, name, "") or "") for name in _secret_settings}
    values.update(os.environ.get(name, "") for name in _secret_env)
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every secret value replaced by MASK."""
    for secret in secret_values() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text

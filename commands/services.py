"""Writes and reads of the service registry."""

import contextlib
import threading
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction

from commands.models import Alias, Command, Shortcode
from commands.parsing import ParsedText


def command_validate_keywords(*, command: Command, keywords: list[str]) -> None:
    """Raise ValidationError if any keyword is already another command's code or alias on the shortcode."""
    command.keywords_validate(keywords)


@transaction.atomic
def command_update(*, command: Command, aliases: list[str] | None = None) -> Command:
    """Validate and save a command with its aliases (replacing them when given)."""
    command.full_clean()
    if aliases is not None:
        normalized = sorted({a.strip().upper() for a in aliases if a.strip()})
        command_validate_keywords(command=command, keywords=normalized)
        if command.code in normalized:
            raise ValidationError("An alias repeats the command's own code.", code="alias_is_code")
    command.save()
    if aliases is not None:
        command.aliases.exclude(keyword__in=normalized).delete()
        existing = set(command.aliases.values_list("keyword", flat=True))
        Alias.objects.bulk_create(Alias(command=command, keyword=k) for k in normalized if k not in existing)
    return command


def shortcode_get(*, number: str) -> Shortcode | None:
    """The shortcode numbered `number`, as the registry read in this process holds it (read-only)."""
    return _registry_entry(number).shortcode


def command_lookup(*, shortcode: Shortcode, parsed: ParsedText) -> Command | None:
    """
    The active command whose code or alias is the message's first word, if any (read-only).
    Asked with the shortcode shortcode_get returned, it answers from the same reading.
    """
    if not parsed.code:
        return None
    return _registry_entry_of(shortcode).commands.get(parsed.code)


def command_get(*, shortcode: Shortcode, command_id: int | None) -> Command | None:
    """The active command `command_id` of `shortcode` (a session's), if it still is one (read-only)."""
    return _registry_entry_of(shortcode).by_id.get(command_id)


# The registry in process ----------------------------------------------------------------
#
# Every inbound SMS needs its shortcode and the command its first word names; both change
# only when staff edit them. Each process keeps what it read, per shortcode number, with
# the registry's version (a token in the shared cache) it read it at. Every save or delete
# of a Shortcode, Command or Alias (commands/signals.py) writes a new token, and again once
# its transaction commits, so that no process keeps what it read before the change was
# visible; each lookup reads the token (one cache GET) and reads the registry afresh when
# it changed. A QuerySet.update() sends no signal: call registry_changed() after one.

REGISTRY_VERSION_KEY = "commands:registry-version"


@dataclass(frozen=True)
class _RegistryEntry:
    """One shortcode (None: no such number) and its active commands by code and alias, and by id."""

    shortcode: Shortcode | None
    commands: dict[str, Command]
    by_id: dict[int, Command]


_registry: dict[str, _RegistryEntry] = {}
_registry_read_at = {"version": ""}
_registry_lock = threading.Lock()


def registry_changed() -> None:
    """The registry was edited: every process reads it afresh (its next lookup)."""
    cache.set(REGISTRY_VERSION_KEY, uuid.uuid4().hex, timeout=None)
    with _registry_lock:
        _registry.clear()


@contextlib.contextmanager
def registry_pinned() -> Iterator[None]:
    """
    Within the block, every lookup uses the registry version read on entering it: one cache
    read for a batch of lookups instead of one each. An edit made meanwhile is seen by the
    first lookup after the block. Blocks nest (the outer version holds).
    """
    if _pinned_version.get() is not None:
        yield
        return
    token = _pinned_version.set(_registry_version())
    try:
        yield
    finally:
        _pinned_version.reset(token)


_pinned_version: ContextVar[str | None] = ContextVar("registry_pinned_version", default=None)


def _registry_version() -> str:
    if (pinned := _pinned_version.get()) is not None:
        return pinned
    version = cache.get(REGISTRY_VERSION_KEY)
    if version is None:
        # First reader since the cache was emptied: every process's copy predates the token.
        cache.add(REGISTRY_VERSION_KEY, uuid.uuid4().hex, timeout=None)
        version = cache.get(REGISTRY_VERSION_KEY, "")
    return version


def _registry_entry(number: str) -> _RegistryEntry:
    version = _registry_version()
    with _registry_lock:
        if version != _registry_read_at["version"]:
            _registry.clear()
            _registry_read_at["version"] = version
        entry = _registry.get(number)
    if entry is None:
        entry = _registry_read(number)
        with _registry_lock:
            if _registry_read_at["version"] == version:
                _registry[number] = entry
    return entry


def _registry_entry_of(shortcode: Shortcode) -> _RegistryEntry:
    """The reading `shortcode` came from, while it is this process's current one; else the current one."""
    with _registry_lock:
        entry = _registry.get(shortcode.number)
    if entry is not None and entry.shortcode is shortcode:
        return entry
    return _registry_entry(shortcode.number)


def _registry_read(number: str) -> _RegistryEntry:
    shortcode = Shortcode.objects.filter(number=number).first()
    commands: dict[str, Command] = {}
    by_id: dict[int, Command] = {}
    if shortcode is not None:
        active = Command.objects.filter(shortcode=shortcode, active=True).prefetch_related("aliases").order_by("pk")
        for command in active:
            command.shortcode = shortcode
            by_id[command.id] = command
            # The lowest pk wins a word two commands claim (validation keeps them apart).
            for keyword in (command.code, *(alias.keyword for alias in command.aliases.all())):
                commands.setdefault(keyword, command)
    return _RegistryEntry(shortcode=shortcode, commands=commands, by_id=by_id)


def shortcode_number_list() -> list[str]:
    """Every configured shortcode's number (the values a `shortcode` metric label may take)."""
    return list(Shortcode.objects.values_list("number", flat=True))


def command_keyword_list() -> list[str]:
    """Every configured code and alias, upper-case (the values a `command` metric label may take)."""
    codes = Command.objects.values_list("code", flat=True).distinct()
    return sorted({*codes, *Alias.objects.values_list("keyword", flat=True).distinct()})

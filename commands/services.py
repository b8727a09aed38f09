"""Writes and reads of the service registry."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

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
    return Shortcode.objects.filter(number=number).first()


def command_lookup(*, shortcode: Shortcode, parsed: ParsedText) -> Command | None:
    """The active command whose code or alias is the message's first word, if any."""
    if not parsed.code:
        return None
    return (
        Command.objects.filter(shortcode=shortcode, active=True)
        .filter(Q(code=parsed.code) | Q(aliases__keyword=parsed.code))
        .order_by("pk")
        .first()
    )


def shortcode_number_list() -> list[str]:
    """Every configured shortcode's number (the values a `shortcode` metric label may take)."""
    return list(Shortcode.objects.values_list("number", flat=True))


def command_keyword_list() -> list[str]:
    """Every configured code and alias, upper-case (the values a `command` metric label may take)."""
    codes = Command.objects.values_list("code", flat=True).distinct()
    return sorted({*codes, *Alias.objects.values_list("keyword", flat=True).distinct()})

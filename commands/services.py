"""Writes and reads of the service registry."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from commands.models import Alias, Command, Shortcode
from commands.parsing import ParsedText


def command_validate_keywords(*, command: Command, keywords: list[str]) -> None:
    """Raise ValidationError if any keyword is already another command's code or alias on the shortcode."""
    if not command.shortcode_id:
        return
    words = {w.strip().upper() for w in keywords if w and w.strip()}
    if not words:
        return
    others = Command.objects.filter(shortcode_id=command.shortcode_id).exclude(pk=command.pk)
    taken_codes = set(others.filter(code__in=words).values_list("code", flat=True))
    taken_aliases = set(Alias.objects.filter(command__in=others, keyword__in=words).values_list("keyword", flat=True))
    clashes = sorted(taken_codes | taken_aliases)
    if clashes:
        raise ValidationError(
            "Already used on this shortcode: %(words)s. A code or alias must be unique within its shortcode.",
            code="keyword_taken",
            params={"words": ", ".join(clashes)},
        )


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

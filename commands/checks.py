from django.core.checks import Error
from django.db import DatabaseError


def check_command_handlers(app_configs=None, databases=None, **kwargs):
    """
    commands.E001: every Command names a registered handler.

    Tagged `database`: it runs with `check --database default` and before `migrate`, never
    at import time without a database.
    """
    from commands.handlers import HANDLERS
    from commands.models import Command

    if not databases:
        return []
    try:
        rows = list(Command.objects.exclude(handler_key__in=list(HANDLERS)).values_list("pk", "code", "handler_key"))
    except DatabaseError:
        # No table yet (before the first migrate): nothing to check.
        return []
    return [
        Error(
            f"Command {code!r} (id {pk}) names handler {key!r}, which is not registered.",
            hint=f"Registered handlers: {', '.join(sorted(HANDLERS))}.",
            obj=f"commands.Command:{pk}",
            id="commands.E001",
        )
        for pk, code, key in rows
    ]

from django.apps import AppConfig
from django.core import checks


class CommandsConfig(AppConfig):
    name = "commands"
    verbose_name = "Service registry"

    def ready(self):
        from commands import handlers  # noqa: F401  (registers the built-in handlers)
        from commands.checks import check_command_handlers

        checks.register(check_command_handlers, checks.Tags.models, checks.Tags.database)

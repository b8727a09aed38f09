from django.apps import AppConfig
from django.core import checks


class CommandsConfig(AppConfig):
    name = "commands"
    verbose_name = "Service registry"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from commands import handlers  # noqa: F401  (registers the built-in handlers)
        from commands.checks import check_command_handlers
        from commands.models import Alias, Command, Shortcode
        from commands.signals import registry_edited

        checks.register(check_command_handlers, checks.Tags.models, checks.Tags.database)
        for model in (Shortcode, Command, Alias):
            for name, signal in (("save", post_save), ("delete", post_delete)):
                signal.connect(registry_edited, sender=model, dispatch_uid=f"registry_edited:{name}:{model.__name__}")

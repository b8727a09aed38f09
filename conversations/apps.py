from django.apps import AppConfig
from django.core import checks


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self):
        # Importing registers the handlers: the demo services and `http`.
        from conversations import handlers, http_handler  # noqa: F401
        from conversations.checks import check_shortcode_providers

        checks.register(check_shortcode_providers, checks.Tags.database)

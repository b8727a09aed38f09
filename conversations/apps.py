from django.apps import AppConfig
from django.core import checks


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self):
        # Importing registers the `http` handler, and the Celery tasks services queue by name.
        from conversations import http_handler, tasks  # noqa: F401
        from conversations.checks import check_shortcode_providers

        checks.register(check_shortcode_providers, checks.Tags.database)

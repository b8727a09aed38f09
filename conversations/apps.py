from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_delete, post_save


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self):
        from commands.models import Alias, Command, Shortcode
        from commands.services import command_keyword_list, shortcode_number_list
        from conversations import flows, http_handler, queue_handler, tasks  # noqa: F401  (registers handlers, tasks)
        from conversations.checks import check_shortcode_providers
        from conversations.sessions import sessions_count
        from delivery.metrics import metrics_active_sessions_set, metrics_vocabulary_forget, metrics_vocabulary_set

        checks.register(check_shortcode_providers, checks.Tags.database)
        # Metric labels name only configured shortcodes and codes: delivery cannot read the
        # registry, so this app, which sees both, tells it where they are and when they change.
        metrics_vocabulary_set(shortcodes=shortcode_number_list, commands=command_keyword_list)
        for model in (Shortcode, Command, Alias):
            uid = f"metrics-vocabulary-{model.__name__}"
            post_save.connect(metrics_vocabulary_forget, sender=model, dispatch_uid=f"{uid}-save")
            post_delete.connect(metrics_vocabulary_forget, sender=model, dispatch_uid=f"{uid}-delete")
        metrics_active_sessions_set(sessions_count)

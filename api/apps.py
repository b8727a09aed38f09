from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The send API: clients, messages, batches, callbacks, OpenAPI."""

    name = "api"
    verbose_name = "Send API"

    def ready(self):
        from api import tasks  # noqa: F401  (registers the Celery tasks queued by name)
        from api.callbacks import callback_event_listen
        from delivery.events import event_listener_add

        # Status changes of messages with a callback URL become signed POSTs (api/callbacks.py).
        event_listener_add(callback_event_listen)

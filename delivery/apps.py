from django.apps import AppConfig
from django.core import checks


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Delivery"

    def ready(self):
        from delivery import tasks  # noqa: F401  (registers the Celery tasks services queue by name)
        from delivery.checks import check_public_base_url
        from delivery.events import event_listener_add
        from delivery.metrics import metrics_event
        from delivery.providers import all_providers
        from delivery.redaction import secret_settings_declare

        checks.register(check_public_base_url, checks.Tags.security)
        event_listener_add(metrics_event)
        secret_settings_declare("METRICS_TOKEN")
        # Build the provider registry now: it declares every provider's secrets for masking,
        # so nothing is logged before they are known.
        all_providers()

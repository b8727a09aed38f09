from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Delivery"

    def ready(self):
        # Build the provider registry now: it declares every provider's secrets for masking,
        # so nothing is logged before they are known.
        from delivery.providers import all_providers

        all_providers()

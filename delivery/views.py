from django.http import HttpRequest

from delivery.providers.base import Provider
from delivery.services import delivery_report_record
from delivery.webhooks import WebhookView


class StatusWebhook(WebhookView):
    """Delivery report: store it, move the message forward, acknowledge."""

    def receive(self, request: HttpRequest, provider: Provider):
        for update in provider.parse_status(request):
            delivery_report_record(provider=provider.slug, update=update)
        return provider.ack()

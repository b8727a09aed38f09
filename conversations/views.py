from django.http import HttpRequest

from conversations.services import message_receive
from delivery.providers.base import Provider
from delivery.webhooks import WebhookView


class InboundWebhook(WebhookView):
    """Inbound SMS: store it once, queue its handling, acknowledge in the provider's form."""

    def receive(self, request: HttpRequest, provider: Provider):
        message_receive(provider=provider.slug, sms=provider.parse_inbound(request))
        return provider.ack()

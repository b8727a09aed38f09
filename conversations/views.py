from django.http import HttpRequest

from conversations.services import message_receive
from delivery.models import ChannelLog
from delivery.providers.base import Provider
from delivery.webhooks import WebhookView


class InboundWebhook(WebhookView):
    """Inbound SMS: store it once, queue its handling, acknowledge in the provider's form."""

    log_kind = ChannelLog.Kind.INBOUND

    def receive(self, request: HttpRequest, provider: Provider):
        message, _ = message_receive(provider=provider.slug, sms=provider.parse_inbound(request))
        self.message_id = message.id
        return provider.ack()

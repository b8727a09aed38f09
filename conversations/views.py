from conversations.receiving import message_receive
from delivery.models import ChannelLog
from delivery.providers.base import Provider, Verified, WebhookRequest
from delivery.webhooks import WebhookView


class InboundWebhook(WebhookView):
    """Inbound SMS: store it once, queue its handling, acknowledge in the provider's form."""

    log_kind = ChannelLog.Kind.INBOUND

    def receive(self, provider: Provider, webhook: WebhookRequest, verified: Verified, log_row: ChannelLog) -> int:
        sms = provider.parse_inbound(webhook, verified)
        message, _ = message_receive(provider=provider.slug, sms=sms, log_row=log_row)
        return message.id

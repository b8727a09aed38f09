from django.http import HttpRequest

from delivery.models import ChannelLog
from delivery.providers.base import Provider
from delivery.services import delivery_report_record
from delivery.webhooks import WebhookView


class StatusWebhook(WebhookView):
    """Delivery report: store it, move the message forward, acknowledge."""

    log_kind = ChannelLog.Kind.STATUS

    def receive(self, request: HttpRequest, provider: Provider):
        for update in provider.parse_status(request):
            report = delivery_report_record(provider=provider.slug, update=update)
            self.message_id = self.message_id or report.message_id
        return provider.ack()

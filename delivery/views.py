from django.db import transaction

from delivery.channel_log import channel_log_row_save
from delivery.models import ChannelLog
from delivery.providers.base import Provider, Verified, WebhookRequest
from delivery.reports import delivery_report_record
from delivery.webhooks import WebhookView


class StatusWebhook(WebhookView):
    """Delivery report: store it, move the message forward, acknowledge."""

    log_kind = ChannelLog.Kind.STATUS

    def receive(
        self, provider: Provider, webhook: WebhookRequest, verified: Verified, log_row: ChannelLog
    ) -> int | None:
        message_id = None
        with transaction.atomic():
            for update in provider.parse_status(webhook, verified):
                report = delivery_report_record(provider=provider.slug, update=update)
                message_id = message_id or report.message_id
            log_row.message_id = message_id
            channel_log_row_save(log_row)
        return message_id

"""Console provider: stores and logs replies, sends nothing. The embedded default."""

import logging

from django.http import HttpRequest

from delivery.providers.base import (
    InboundSMS,
    OutboundSMS,
    Provider,
    SendResult,
    StatusUpdate,
    WebhookBadRequest,
)

logger = logging.getLogger(__name__)


class ConsoleProvider(Provider):
    slug = "console"
    receives_webhooks = False

    def authenticate(self, request: HttpRequest) -> None:
        raise WebhookBadRequest("the console provider receives no webhooks")

    def parse_inbound(self, request: HttpRequest) -> InboundSMS:
        raise WebhookBadRequest("the console provider receives no webhooks")

    def parse_status(self, request: HttpRequest) -> list[StatusUpdate]:
        raise WebhookBadRequest("the console provider receives no webhooks")

    def send(self, sms: OutboundSMS) -> SendResult:
        logger.info("SMS to %s from %s: %s", sms.to, sms.sender, sms.body)
        return SendResult(provider_message_id=f"console-{sms.reference}")

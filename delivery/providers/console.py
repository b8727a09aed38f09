"""Console provider: stores and logs replies, sends nothing. The embedded default."""

import logging

from delivery.providers.base import (
    InboundSMS,
    OutboundSMS,
    Provider,
    SendResult,
    StatusUpdate,
    Verified,
    WebhookBadRequest,
    WebhookRequest,
)

logger = logging.getLogger(__name__)


class ConsoleProvider(Provider):
    slug = "console"
    receives_webhooks = False

    def authenticate(self, webhook: WebhookRequest) -> Verified:
        raise WebhookBadRequest("the console provider receives no webhooks")

    def parse_inbound(self, webhook: WebhookRequest, verified: Verified) -> InboundSMS:
        raise WebhookBadRequest("the console provider receives no webhooks")

    def parse_status(self, webhook: WebhookRequest, verified: Verified) -> list[StatusUpdate]:
        raise WebhookBadRequest("the console provider receives no webhooks")

    def send(self, sms: OutboundSMS) -> SendResult:
        logger.info("SMS to %s from %s: %s", sms.to, sms.sender, sms.body)
        return SendResult(provider_message_id=f"console-{sms.reference}")

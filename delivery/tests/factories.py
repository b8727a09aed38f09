import base64

import factory

from delivery.models import Message
from delivery.providers.base import OutboundSMS
from delivery.statuses import Direction, Status


class OutboundMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    direction = Direction.OUTBOUND
    status = Status.QUEUED
    shortcode = "57675"
    phone = factory.Sequence(lambda n: f"+9198765{n:05d}")
    body = "Your balance is Rs 120.00"
    provider = "generic"


class InboundMessageFactory(OutboundMessageFactory):
    direction = Direction.INBOUND
    status = Status.RECEIVED
    body = "1"


def outbound_sms(*, provider: str, reference: str = "6f1c2a9e-0d4b-4c1e-9a7f-2b3c4d5e6f70", **overrides) -> OutboundSMS:
    """What message_deliver hands a provider for one reply; the callback URL carries our reference."""
    fields = {
        "reference": str(reference),
        "to": "+919876543210",
        "sender": "57675",
        "body": "Your balance is Rs 120.00",
        "callback_url": f"https://sms.example.com/webhooks/{provider}/status/?ref={reference}",
        "options": {},
    }
    return OutboundSMS(**{**fields, **overrides})


def basic_auth(user: str, password: str) -> str:
    """The Authorization header value of HTTP Basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

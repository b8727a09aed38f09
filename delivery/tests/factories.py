import factory

from delivery.models import Message


class OutboundMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    direction = Message.Direction.OUTBOUND
    status = Message.Status.QUEUED
    shortcode = "57675"
    phone = factory.Sequence(lambda n: f"+9198765{n:05d}")
    body = "Your balance is Rs 120.00"
    provider = "generic"


class InboundMessageFactory(OutboundMessageFactory):
    direction = Message.Direction.INBOUND
    status = Message.Status.RECEIVED
    body = "1"

"""What an API client may do: send from the shortcodes it was given, read what it sent."""

from django.db.models import Q, QuerySet
from rest_framework import status

from api.errors import ApiRefusal
from api.models import ApiClient
from commands.models import Shortcode
from delivery.models import Message


def client_shortcode_get(client: ApiClient, number: str) -> Shortcode:
    """
    The active shortcode `number`, when `client` may send from it; otherwise ApiRefusal
    `shortcode_not_allowed` (403). An unknown shortcode is refused the same way, so a
    client learns nothing of shortcodes that are not its own.
    """
    shortcode = client.shortcodes.filter(number=str(number).strip(), active=True).first()
    if shortcode is None:
        raise ApiRefusal(
            "shortcode_not_allowed",
            f"This client may not send from shortcode {str(number)[:20]!r}.",
            status_code=status.HTTP_403_FORBIDDEN,
        )
    return shortcode


def client_messages(client: ApiClient) -> QuerySet[Message]:
    """The messages `client` sent, one by one or in its batches: all it may read."""
    return Message.objects.filter(Q(client_message__client=client) | Q(batch_recipient__batch__client_id=client.pk))

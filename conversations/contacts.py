"""Subscribers and their support tickets, as the demo services record them."""

from django.utils import timezone

from conversations.models import Contact, SupportTicket


def contact_touch(*, phone: str) -> None:
    """Remember a subscriber from their first SMS (one INSERT ... ON CONFLICT DO NOTHING)."""
    Contact.objects.bulk_create([Contact(phone=phone)], ignore_conflicts=True)


def contact_register(*, phone: str, name: str) -> Contact:
    """Record a subscriber's name; registering again updates it."""
    contact, _ = Contact.objects.get_or_create(phone=phone)
    contact.name = name
    contact.registered_at = contact.registered_at or timezone.now()
    contact.full_clean()
    contact.save(update_fields=["name", "registered_at"])
    return contact


def ticket_open(*, phone: str, shortcode: str, issue: str) -> SupportTicket:
    """Open a support ticket; its reference is derived from its id so it is short and unique."""
    ticket = SupportTicket.objects.create(phone=phone, shortcode=shortcode, issue=issue)
    ticket.reference = f"T{ticket.pk:06d}"
    ticket.save(update_fields=["reference"])
    return ticket

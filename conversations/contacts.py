"""Subscribers and their support tickets, as the demo services record them."""

import math
import threading
import time
from collections import OrderedDict

from django.db import transaction
from django.utils import timezone

from conversations.models import Contact, SupportTicket

# Phones this process stored a Contact for lately: their next SMS writes nothing. A contact
# deleted meanwhile comes back with the phone's first SMS after this long.
CONTACT_TOUCH_MEMORY_SECONDS = 600.0
CONTACT_TOUCH_MEMORY_SIZE = 10_000

_touched: OrderedDict[str, float] = OrderedDict()
_touched_lock = threading.Lock()


def contacts_touch(*, phones: list[str]) -> None:
    """
    Remember subscribers from their first SMS (one INSERT ... ON CONFLICT DO NOTHING for
    all), each once per CONTACT_TOUCH_MEMORY_SECONDS per process: a phone seen lately is
    known. Only what commits is remembered, so a rolled-back touch is tried again.
    """
    now = time.monotonic()
    with _touched_lock:
        seen = {phone for phone in phones if now - _touched.get(phone, -math.inf) < CONTACT_TOUCH_MEMORY_SECONDS}
    unseen = sorted(set(phones) - seen)
    if not unseen:
        return
    Contact.objects.bulk_create([Contact(phone=phone) for phone in unseen], ignore_conflicts=True)
    transaction.on_commit(lambda: _touch_remember(unseen, now))


def _touch_remember(phones: list[str], at: float) -> None:
    with _touched_lock:
        for phone in phones:
            _touched[phone] = at
            _touched.move_to_end(phone)
        while len(_touched) > CONTACT_TOUCH_MEMORY_SIZE:
            _touched.popitem(last=False)


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

"""
The suppression (opt-out) list: who gets nothing from which shortcode.

A row stops every send from its shortcode ("" = every shortcode) to its phone: message_send
refuses before storing, message_deliver refuses again at send time. Rows come from an SMS
(STOP), from the admin, or from a provider saying the number opted out at the carrier.
"""

import logging

from delivery.events import event
from delivery.models import Message, Suppression
from delivery.providers.base import Provider

logger = logging.getLogger(__name__)


def suppression_get(*, phone: str, shortcode: str) -> Suppression | None:
    """The opt-out that stops sends from `shortcode` to `phone`: its own, or an all-shortcodes one."""
    return Suppression.objects.filter(phone=phone, shortcode__in=[shortcode, ""]).order_by("-shortcode").first()


def suppressions_find(*, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], Suppression]:
    """
    suppression_get for many (phone, shortcode) pairs in one query: the opt-out that stops
    each pair's sends, by pair; pairs with none are absent.
    """
    if not pairs:
        return {}
    phones = {phone for phone, _ in pairs}
    shortcodes = {shortcode for _, shortcode in pairs} | {""}
    found: dict[tuple[str, str], Suppression] = {}
    # Ordered so that a shortcode's own opt-out, read last, wins over an all-shortcodes one.
    for suppression in Suppression.objects.filter(phone__in=phones, shortcode__in=shortcodes).order_by("shortcode"):
        for shortcode in {shortcode for phone, shortcode in pairs if phone == suppression.phone}:
            if suppression.shortcode in (shortcode, ""):
                found[(suppression.phone, shortcode)] = suppression
    return found


def suppression_add(*, phone: str, shortcode: str, keyword: str, source: str = "sms", message=None) -> Suppression:
    """Put a number on the suppression list for one shortcode ("" = all); opting out twice keeps the first row."""
    suppression, created = Suppression.objects.get_or_create(
        phone=phone, shortcode=shortcode, defaults={"keyword": keyword, "source": source, "message": message}
    )
    if created:
        event("suppression.added", shortcode=shortcode, source=source, phone=phone)
    return suppression


def suppression_remove(*, phone: str, shortcode: str) -> int:
    """Opt a number back in on a shortcode, lifting an all-shortcodes opt-out too."""
    deleted, _ = Suppression.objects.filter(phone=phone, shortcode__in=[shortcode, ""]).delete()
    return deleted


def suppression_reason(*, phone: str, suppression: Suppression) -> str:
    """Why a send to `phone` is refused, as stored on the refused message."""
    return f"{phone} opted out ({suppression.keyword or suppression.source}) on " + (
        f"{suppression.created_at:%Y-%m-%d %H:%M} UTC"
    )


def carrier_opt_out_record(*, provider: Provider, message: Message, error_code: str, provider_status: str = "") -> bool:
    """
    When `provider` says the number opted out at the carrier or aggregator (its
    OPTED_OUT_ERROR_CODES, e.g. Twilio 21610), put it on our suppression list for the
    message's shortcode, with the code as keyword, so the next send is refused before it
    leaves. The refused message itself keeps its failed or rejected status. True when so.
    """
    if not provider.reports_opt_out(error_code=error_code, provider_status=provider_status):
        return False
    keyword = (error_code or provider_status).strip()[:30]
    suppression_add(
        phone=message.phone, shortcode=message.shortcode, keyword=keyword, source="provider", message=message
    )
    logger.info("%s says %s opted out (%s): suppressed on %s", provider.slug, message.phone, keyword, message.shortcode)
    return True

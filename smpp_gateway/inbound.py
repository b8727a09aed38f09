"""
MO over SMPP: a deliver_sm that is not a receipt becomes an inbound message exactly as a
webhook's would (conversations.receiving.message_receive: the same dedupe, the same
handling queued on commit). A concatenated MO (UDH or SAR TLVs) is kept part by part and
stored once whole.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.receiving import message_receive
from delivery.providers.base import InboundSMS
from delivery.segments import gsm7_decode
from smpp_gateway import pdu
from smpp_gateway.config import PROVIDER
from smpp_gateway.models import InboundPart

logger = logging.getLogger(__name__)

# Parts of one concatenated MO arrive within this; older parts with the same reference
# belong to an earlier message (8-bit references are reused).
CONCAT_WINDOW = timedelta(hours=1)
UCS2 = 0x08


@dataclass(frozen=True)
class MoPart:
    reference: int
    total: int
    seq: int


def mo_decode(data_coding: int, octets: bytes) -> str:
    """The text of MO octets: GSM-7 (0, unpacked), IA5/ASCII (1), Latin-1 (3), UCS-2 (8)."""
    coding = data_coding & 0x0F if data_coding & 0xF0 == 0xF0 else data_coding
    if coding == UCS2:
        return octets.decode("utf-16-be", "replace")
    if coding == 0x00:
        return gsm7_decode(octets)
    if coding == 0x01:
        return octets.decode("ascii", "replace")
    return octets.decode("latin-1")


def _udh_split(octets: bytes) -> tuple[MoPart | None, bytes]:
    """The concatenation element of a UDH (8- or 16-bit reference) and the octets after the UDH."""
    if not octets:
        return None, octets
    length = octets[0]
    header, rest = octets[1 : 1 + length], octets[1 + length :]
    position = 0
    concat = None
    while position + 2 <= len(header):
        element, size = header[position], header[position + 1]
        value = header[position + 2 : position + 2 + size]
        if element == 0x00 and size == 3:
            concat = MoPart(reference=value[0], total=value[1], seq=value[2])
        elif element == 0x08 and size == 4:
            concat = MoPart(reference=int.from_bytes(value[:2], "big"), total=value[2], seq=value[3])
        position += 2 + size
    return concat, rest


def mo_parse(deliver_sm: pdu.Pdu) -> tuple[MoPart | None, bytes]:
    """The concatenation of an MO (None for a single SMS) and its text's octets."""
    octets = bytes(deliver_sm.fields.get("short_message") or deliver_sm.tlvs.get(pdu.TLV_MESSAGE_PAYLOAD) or b"")
    if deliver_sm.fields.get("esm_class", 0) & pdu.ESM_UDHI:
        return _udh_split(octets)
    total = deliver_sm.tlv_int(pdu.TLV_SAR_TOTAL_SEGMENTS)
    if total and total > 1:
        return (
            MoPart(
                reference=deliver_sm.tlv_int(pdu.TLV_SAR_MSG_REF_NUM) or 0,
                total=total,
                seq=deliver_sm.tlv_int(pdu.TLV_SAR_SEGMENT_SEQNUM) or 0,
            ),
            octets,
        )
    return None, octets


def _sender(deliver_sm: pdu.Pdu) -> str:
    """The subscriber's number: international (TON 1) gets its '+', others are read in the default region."""
    address = str(deliver_sm.fields.get("source_addr") or "").strip()
    if deliver_sm.fields.get("source_addr_ton") == 1 and address.isascii() and address.isdigit():
        return f"+{address}"
    return address


def mo_receive(*, shortcode: str, deliver_sm: pdu.Pdu, raw: dict) -> int | None:
    """
    Store an MO delivered on `shortcode`'s bind; the inbound message's id, or None while
    a concatenated MO waits for more parts. A bind receives for its own shortcode, whatever
    destination address the SMSC writes (kept in the raw payload). Raises what
    message_receive raises for input it cannot store.
    """
    concat, octets = mo_parse(deliver_sm)
    sender = _sender(deliver_sm)
    data_coding = int(deliver_sm.fields.get("data_coding") or 0)
    if concat is None or concat.total <= 1:
        return _receive(shortcode=shortcode, sender=sender, text=mo_decode(data_coding, octets), raw=raw)
    if not 1 <= concat.seq <= concat.total:
        logger.warning("MO part %s of %s from %s dropped: no such part", concat.seq, concat.total, sender)
        return None
    with transaction.atomic():
        key = {"shortcode": shortcode, "sender": sender, "reference": concat.reference, "total": concat.total}
        InboundPart.objects.filter(**key, received_at__lt=timezone.now() - CONCAT_WINDOW).delete()
        try:
            with transaction.atomic():
                InboundPart.objects.create(**key, seq=concat.seq, data_coding=data_coding, payload=octets)
        except IntegrityError:
            logger.info("MO part %s/%s from %s delivered again; ignored", concat.seq, concat.total, sender)
            return None
        parts = list(InboundPart.objects.select_for_update().filter(**key, assembled=False).order_by("seq"))
        if len(parts) < concat.total:
            return None
        # Joined as octets, then decoded: a sender that cut an escape or a surrogate pair is read whole.
        text = mo_decode(parts[0].data_coding, b"".join(bytes(part.payload) for part in parts))
        InboundPart.objects.filter(id__in=[part.id for part in parts]).update(assembled=True)
        return _receive(shortcode=shortcode, sender=sender, text=text, raw={**raw, "parts": concat.total})


def inbound_parts_purge(*, shortcode: str) -> int:
    """Delete parts older than CONCAT_WINDOW (assembled, or never completed: logged); how many."""
    old = InboundPart.objects.filter(shortcode=shortcode, received_at__lt=timezone.now() - CONCAT_WINDOW)
    incomplete = old.filter(assembled=False).count()
    if incomplete:
        logger.warning("%d parts of MO to %s never completed; dropped", incomplete, shortcode)
    return old.delete()[0]


def _receive(*, shortcode: str, sender: str, text: str, raw: dict) -> int:
    sms = InboundSMS(sender=sender, recipient=shortcode, body=text, provider_message_id=None, raw=raw)
    message, _created = message_receive(provider=PROVIDER, sms=sms)
    return message.id

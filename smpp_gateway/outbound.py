"""
Outbound messages as submit_sm PDUs: encoding, UDH parts, addresses and DLT TLVs; and
what the bind records when the SMSC answers.
"""

from dataclasses import dataclass, field

from django.db import transaction

from delivery.deliver import send_options
from delivery.models import Message
from delivery.reports import delivery_reports_apply_pending
from delivery.segments import GSM7, gsm7_encode, message_parts
from smpp_gateway import pdu
from smpp_gateway.config import PROVIDER, BindConfig
from smpp_gateway.models import SubmittedPart
from smpp_gateway.receipts import smsc_id_forms

DATA_CODING = {GSM7: 0x00, "ucs2": 0x08}
# registered_delivery: a receipt on success or failure.
RECEIPT_REQUESTED = 0x01


@dataclass
class PartSubmit:
    """One submit_sm of a message: part `part` of `total` (1-based)."""

    message_id: int
    part: int
    total: int
    fields: dict
    tlvs: dict[int, bytes] = field(default_factory=dict)


def message_parts_build(
    message: Message, config: BindConfig, *, skip: frozenset[int] = frozenset()
) -> list[PartSubmit]:
    """
    The submit_sm parts of `message`, those in `skip` (accepted before) left out.

    The text goes as GSM-7 (data_coding 0, unpacked septets) or UCS-2 (8, UTF-16BE), as
    segments.message_parts chooses and splits it: a long text gets a UDH per part
    (`05 00 03 ref total seq`, esm_class 0x40) with the message id's low byte as reference,
    so a part sent again after a rebind carries the same reference. The DLT PE ID and
    template ID travel in the shortcode's TLVs.
    """
    encoding, texts = message_parts(message.body)
    options = send_options(message)
    sender = str(options.get("sender") or message.shortcode)
    alphanumeric = not sender.lstrip("+").isdigit()
    tlvs: dict[int, bytes] = {}
    if message.dlt_entity_id:
        tlvs[config.pe_id_tlv] = message.dlt_entity_id.encode("ascii")
    if message.dlt_template_id:
        tlvs[config.template_id_tlv] = message.dlt_template_id.encode("ascii")
    total = len(texts)
    reference = message.id % 256
    parts = []
    for number, text in enumerate(texts, start=1):
        if number in skip:
            continue
        octets = gsm7_encode(text) if encoding == GSM7 else text.encode("utf-16-be")
        esm_class = 0
        if total > 1:
            octets = bytes((5, 0, 3, reference, total, number)) + octets
            esm_class = pdu.ESM_UDHI
        fields = {
            "service_type": "",
            "source_addr_ton": 5 if alphanumeric else config.source_ton,
            "source_addr_npi": 0 if alphanumeric else config.source_npi,
            "source_addr": sender.lstrip("+"),
            "dest_addr_ton": config.dest_ton,
            "dest_addr_npi": config.dest_npi,
            "destination_addr": message.phone.lstrip("+"),
            "esm_class": esm_class,
            "registered_delivery": RECEIPT_REQUESTED,
            "data_coding": DATA_CODING[encoding],
            "short_message": octets,
        }
        parts.append(PartSubmit(message.id, number, total, fields, dict(tlvs)))
    return parts


def part_accepted_record(*, shortcode: str, message_id: int, part: int, smsc_message_id: str) -> None:
    """
    Keep the SMSC id of an accepted part, and apply receipts for it that arrived before
    the id was known (kept unmatched under the form the receipt wrote it in).
    """
    with transaction.atomic():
        SubmittedPart.objects.get_or_create(
            message_id=message_id,
            part=part,
            # Lower-case: receipts write hex ids in either case (see smsc_id_forms).
            defaults={"shortcode": shortcode, "smsc_message_id": smsc_message_id.lower()},
        )
        for form in smsc_id_forms(smsc_message_id):
            delivery_reports_apply_pending(message_id=message_id, provider=PROVIDER, provider_message_id=form)


def parts_accepted(message_id: int) -> dict[int, str]:
    """The parts of a message the SMSC accepted before: {part: SMSC id}."""
    return dict(SubmittedPart.objects.filter(message_id=message_id).values_list("part", "smsc_message_id"))

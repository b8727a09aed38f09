"""
Delivery receipts: a deliver_sm that reports on a submitted part, recognised by its
esm_class, by the receipted_message_id / message_state TLVs, or by the receipt text
(SMPP 3.4 Appendix B: `id:... sub:... dlvrd:... submit date:... done date:... stat:...
err:... text:...`), and recorded through the same service as an HTTP delivery report.
"""

import logging
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from delivery.models import Message
from delivery.providers import get_provider
from delivery.providers.base import StatusUpdate
from delivery.providers.smpp import MESSAGE_STATES
from delivery.reports import delivery_report_record
from smpp_gateway import pdu
from smpp_gateway.config import PROVIDER
from smpp_gateway.models import SubmittedPart

logger = logging.getLogger(__name__)

# Case-insensitive, as SMSCs write `Text:` or `text:`; dates of 10 (YYMMDDhhmm) or 12 digits.
RECEIPT_TEXT = re.compile(r"\bid:\s*(?P<id>\S+).*?\bstat:\s*(?P<stat>\w+)", re.IGNORECASE | re.DOTALL)
RECEIPT_ERR = re.compile(r"\berr:\s*(?P<err>\w+)", re.IGNORECASE)
RECEIPT_DONE = re.compile(r"\bdone\s+date:\s*(?P<date>\d{10}(?:\d{2})?)", re.IGNORECASE)


@dataclass(frozen=True)
class Receipt:
    smsc_message_id: str
    provider_status: str  # the receipt's word (DELIVRD), or the message_state value ("2")
    error_code: str = ""
    done_at: datetime | None = None
    text: str = ""


def is_receipt(deliver_sm: pdu.Pdu) -> bool:
    """A receipt rather than an MO: by esm_class, by its TLVs, or by its text."""
    if deliver_sm.fields.get("esm_class", 0) & pdu.ESM_TYPE_MASK:
        return True
    if pdu.TLV_RECEIPTED_MESSAGE_ID in deliver_sm.tlvs or pdu.TLV_MESSAGE_STATE in deliver_sm.tlvs:
        return True
    text = bytes(deliver_sm.fields.get("short_message") or b"").decode("latin-1")
    return bool(RECEIPT_TEXT.match(text.strip()))


def receipt_parse(deliver_sm: pdu.Pdu) -> Receipt | None:
    """
    The receipt a deliver_sm carries, or None when it names no message. The TLVs win
    over the text where both are present; the text gives what they lack (err, done date).
    """
    text = bytes(deliver_sm.fields.get("short_message") or deliver_sm.tlvs.get(pdu.TLV_MESSAGE_PAYLOAD) or b"")
    text = text.decode("latin-1")
    match = RECEIPT_TEXT.search(text)
    smsc_id = deliver_sm.tlv_text(pdu.TLV_RECEIPTED_MESSAGE_ID) or (match["id"] if match else "")
    state = deliver_sm.tlv_int(pdu.TLV_MESSAGE_STATE)
    if state is not None and state in MESSAGE_STATES:
        provider_status = str(state)
    else:
        provider_status = match["stat"].upper() if match else ""
    if not smsc_id or not provider_status:
        return None
    error_code = ""
    if (network_error := deliver_sm.tlvs.get(pdu.TLV_NETWORK_ERROR_CODE)) and len(network_error) == 3:
        error_code = str(int.from_bytes(network_error[1:], "big"))
    elif err := RECEIPT_ERR.search(text):
        error_code = err["err"]
    if error_code.strip("0") == "":
        error_code = ""  # err:000 is no error
    return Receipt(
        smsc_message_id=smsc_id.strip(),
        provider_status=provider_status,
        error_code=error_code,
        done_at=_receipt_date(text),
        text=text,
    )


def _receipt_date(text: str) -> datetime | None:
    match = RECEIPT_DONE.search(text)
    if not match:
        return None
    digits = match["date"]
    try:
        return datetime.strptime(digits, "%y%m%d%H%M%S" if len(digits) == 12 else "%y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def smsc_id_forms(smsc_message_id: str) -> list[str]:
    """
    The forms an SMSC id may be written in, as written first: some SMSCs answer submit_sm
    in hex and write the receipt in decimal, or the reverse. Lower-case, as stored.
    """
    given = smsc_message_id.strip().lower()
    forms = [given]
    if given and all(c in string.hexdigits for c in given) and len(given) <= 32:
        forms.append(str(int(given, 16)))
    if given.isascii() and given.isdigit() and len(given) <= 38:
        forms.append(format(int(given), "x"))
        forms.append(str(int(given)))
    return list(dict.fromkeys(forms))


def receipt_record(*, shortcode: str, receipt: Receipt, raw: dict) -> None:
    """
    Move the message the receipt reports on, through delivery_report_record as an HTTP
    report would. Its part is found by the SMSC id in any of its forms (the id as written
    first); the report then names our reference, so it reaches that message only. A
    receipt for a part not yet recorded is kept unmatched under the id as written, and
    applied when the part's submit_sm_resp is recorded.
    """
    forms = smsc_id_forms(receipt.smsc_message_id)
    parts = {
        part.smsc_message_id: part
        for part in SubmittedPart.objects.filter(shortcode=shortcode, smsc_message_id__in=forms).select_related(
            "message"
        )
    }
    part = next((parts[form] for form in forms if form in parts), None)
    provider = get_provider(PROVIDER)
    message: Message | None = part.message if part is not None else None
    update = StatusUpdate(
        status=provider.map_status(receipt.provider_status),
        provider_status=receipt.provider_status,
        provider_message_id=(message.provider_message_id or "") if message is not None else forms[0],
        reference=str(message.uuid) if message is not None else "",
        error_code=receipt.error_code,
        at=receipt.done_at,
        raw=raw,
    )
    delivery_report_record(provider=PROVIDER, update=update)

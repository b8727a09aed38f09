"""
SMPP 3.4 PDUs as bytes and back: the header, the mandatory fields of the operations an
ESME transceiver uses, and TLVs (optional parameters) of any tag, vendor ones included.

A PDU is a command_length, command_id, command_status and sequence_number (4 octets each,
big-endian), then its body: C-octet strings (NUL-terminated), one-octet integers and the
short_message octets, then TLVs (tag, length: 2 octets each; value). Spec: SMPP v3.4
sections 3 and 4 (field order) and 5.3 (TLV tags).
"""

import struct
from dataclasses import dataclass, field

HEADER = struct.Struct(">IIII")
HEADER_SIZE = HEADER.size
# Larger than any PDU an SMSC sends (short_message <= 254 octets, message_payload <= 64 K):
# anything above is a broken stream, not a PDU.
MAX_PDU_SIZE = 70_000
RESPONSE_BIT = 0x80000000

GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015
DATA_SM = 0x00000103

COMMAND_NAMES = {
    GENERIC_NACK: "generic_nack",
    BIND_RECEIVER: "bind_receiver",
    BIND_TRANSMITTER: "bind_transmitter",
    SUBMIT_SM: "submit_sm",
    DELIVER_SM: "deliver_sm",
    UNBIND: "unbind",
    BIND_TRANSCEIVER: "bind_transceiver",
    ENQUIRE_LINK: "enquire_link",
    DATA_SM: "data_sm",
}

# command_status values the client acts on (SMPP 3.4 section 5.1.3).
ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDID = 0x03
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RSUBMITFAIL = 0x45
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64
ESME_RX_P_APPN = 0x65
STATUS_NAMES = {
    ESME_ROK: "ESME_ROK",
    ESME_RINVMSGLEN: "ESME_RINVMSGLEN",
    ESME_RINVCMDID: "ESME_RINVCMDID",
    ESME_RALYBND: "ESME_RALYBND",
    ESME_RSYSERR: "ESME_RSYSERR",
    ESME_RINVSRCADR: "ESME_RINVSRCADR",
    ESME_RINVDSTADR: "ESME_RINVDSTADR",
    ESME_RBINDFAIL: "ESME_RBINDFAIL",
    ESME_RINVPASWD: "ESME_RINVPASWD",
    ESME_RINVSYSID: "ESME_RINVSYSID",
    ESME_RMSGQFUL: "ESME_RMSGQFUL",
    ESME_RSUBMITFAIL: "ESME_RSUBMITFAIL",
    ESME_RTHROTTLED: "ESME_RTHROTTLED",
    ESME_RX_T_APPN: "ESME_RX_T_APPN",
    ESME_RX_P_APPN: "ESME_RX_P_APPN",
}
# The SMSC is busy, not refusing: back off and submit again.
TEMPORARY_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})

# TLV tags the client reads or writes (section 5.3.2).
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_NETWORK_ERROR_CODE = 0x0423
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427

# esm_class bits (section 5.2.12).
ESM_UDHI = 0x40
ESM_TYPE_MASK = 0x3C
ESM_SMSC_RECEIPT = 0x04

INTERFACE_VERSION = 0x34

# Mandatory body fields per operation: (name, kind); kind "c" is a C-octet string, "b" one
# octet, "sm" the sm_length octet followed by that many short_message octets.
_SUBMIT_FIELDS = (
    ("service_type", "c"),
    ("source_addr_ton", "b"),
    ("source_addr_npi", "b"),
    ("source_addr", "c"),
    ("dest_addr_ton", "b"),
    ("dest_addr_npi", "b"),
    ("destination_addr", "c"),
    ("esm_class", "b"),
    ("protocol_id", "b"),
    ("priority_flag", "b"),
    ("schedule_delivery_time", "c"),
    ("validity_period", "c"),
    ("registered_delivery", "b"),
    ("replace_if_present_flag", "b"),
    ("data_coding", "b"),
    ("sm_default_msg_id", "b"),
    ("short_message", "sm"),
)
_BIND_FIELDS = (
    ("system_id", "c"),
    ("password", "c"),
    ("system_type", "c"),
    ("interface_version", "b"),
    ("addr_ton", "b"),
    ("addr_npi", "b"),
    ("address_range", "c"),
)
BODY_FIELDS = {
    BIND_TRANSCEIVER: _BIND_FIELDS,
    BIND_TRANSCEIVER | RESPONSE_BIT: (("system_id", "c"),),
    SUBMIT_SM: _SUBMIT_FIELDS,
    SUBMIT_SM | RESPONSE_BIT: (("message_id", "c"),),
    DELIVER_SM: _SUBMIT_FIELDS,
    DELIVER_SM | RESPONSE_BIT: (("message_id", "c"),),
}


class PduError(ValueError):
    """Bytes that are not a well-formed PDU."""


@dataclass
class Pdu:
    command_id: int
    sequence: int
    status: int = ESME_ROK
    fields: dict = field(default_factory=dict)  # mandatory fields: str, int or bytes (short_message)
    tlvs: dict[int, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        base = COMMAND_NAMES.get(self.command_id & ~RESPONSE_BIT, f"0x{self.command_id:08x}")
        return f"{base}_resp" if self.is_response and self.command_id != GENERIC_NACK else base

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    def tlv_int(self, tag: int) -> int | None:
        value = self.tlvs.get(tag)
        return int.from_bytes(value, "big") if value else None

    def tlv_text(self, tag: int) -> str | None:
        value = self.tlvs.get(tag)
        return value.rstrip(b"\x00").decode("latin-1") if value is not None else None


def status_name(status: int) -> str:
    """`ESME_RTHROTTLED (0x00000058)`: how an SMPP status reads in a reason."""
    return f"{STATUS_NAMES.get(status, 'SMPP status')} (0x{status:08x})"


def encode(pdu: Pdu) -> bytes:
    """The PDU's bytes; a response with an error status carries no body (section 4.1)."""
    body = bytearray()
    fields = BODY_FIELDS.get(pdu.command_id, ())
    if pdu.is_response and pdu.status != ESME_ROK and pdu.command_id != BIND_TRANSCEIVER | RESPONSE_BIT:
        fields = ()
    for name, kind in fields:
        value = pdu.fields.get(name)
        if kind == "c":
            text = value if isinstance(value, bytes) else str(value or "").encode("latin-1")
            body += text + b"\x00"
        elif kind == "b":
            body.append(int(value or 0) & 0xFF)
        else:
            octets = bytes(value or b"")
            if len(octets) > 254:
                raise PduError("short_message is longer than 254 octets: use message_payload")
            body.append(len(octets))
            body += octets
    for tag, value in pdu.tlvs.items():
        body += struct.pack(">HH", tag, len(value)) + value
    return HEADER.pack(HEADER_SIZE + len(body), pdu.command_id, pdu.status, pdu.sequence) + bytes(body)


def decode(data: bytes) -> Pdu:
    """One whole PDU (its length as the header says) into a Pdu; PduError when malformed."""
    if len(data) < HEADER_SIZE:
        raise PduError("shorter than a PDU header")
    length, command_id, status, sequence = HEADER.unpack_from(data)
    if length != len(data):
        raise PduError(f"command_length {length} but {len(data)} octets")
    pdu = Pdu(command_id=command_id, sequence=sequence, status=status)
    position = HEADER_SIZE
    for name, kind in BODY_FIELDS.get(command_id, ()):
        if position >= length:
            break  # an error response, or a body cut short by a lenient SMSC: the rest is absent
        if kind == "c":
            end = data.find(b"\x00", position)
            if end < 0:
                raise PduError(f"{name} is not NUL-terminated")
            pdu.fields[name] = data[position:end].decode("latin-1")
            position = end + 1
        elif kind == "b":
            pdu.fields[name] = data[position]
            position += 1
        else:
            size = data[position]
            position += 1
            if position + size > length:
                raise PduError("short_message runs past the PDU")
            pdu.fields[name] = data[position : position + size]
            position += size
    while position < length:
        if position + 4 > length:
            raise PduError("a TLV header runs past the PDU")
        tag, size = struct.unpack_from(">HH", data, position)
        position += 4
        if position + size > length:
            raise PduError(f"TLV 0x{tag:04x} runs past the PDU")
        pdu.tlvs[tag] = data[position : position + size]
        position += size
    return pdu


def frame_length(header: bytes) -> int:
    """The whole PDU's length from its first 4 octets; PduError when it cannot be a PDU."""
    (length,) = struct.unpack(">I", header[:4])
    if not HEADER_SIZE <= length <= MAX_PDU_SIZE:
        raise PduError(f"command_length {length} is not a PDU's")
    return length


def response_to(request: Pdu, *, status: int = ESME_ROK, **fields) -> Pdu:
    """The response PDU to `request`, with its sequence number."""
    return Pdu(command_id=request.command_id | RESPONSE_BIT, sequence=request.sequence, status=status, fields=fields)

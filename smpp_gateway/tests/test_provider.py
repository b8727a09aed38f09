"""
The smpp provider's declarations and the pure parts of the bind: shortcode options staff
may save, the PDU codec on bad bytes, receipt text as SMSCs write it, SMSC id forms.
"""

import pytest

from delivery.models import Message
from delivery.providers import get_provider, provider_config_errors
from delivery.redaction import declared_secret_names
from delivery.statuses import Status
from delivery.tasks import deliver
from delivery.tests.factories import OutboundMessageFactory
from smpp_gateway import pdu
from smpp_gateway.receipts import is_receipt, receipt_parse, smsc_id_forms

VALID = {"host": "smsc.example.net", "system_id": "smsgate"}


def test_the_provider_receives_no_webhooks_and_declares_its_password_variable():
    provider = get_provider("smpp")
    assert provider.receives_webhooks is False
    assert provider.webhook_refusal() is None
    assert "SMPP_PASSWORD" in declared_secret_names()[1]
    assert {option.name for option in provider.OPTIONS} >= {
        "host",
        "port",
        "system_id",
        "password_env",
        "system_type",
        "source_ton",
        "source_npi",
        "dest_ton",
        "dest_npi",
        "pe_id_tlv",
        "template_id_tlv",
        "window",
        "mps",
    }
    assert next(o for o in provider.OPTIONS if o.name == "password_env").kind == "env"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({**VALID}, None, id="minimal"),
        pytest.param({**VALID, "port": 2776, "window": 50, "pe_id_tlv": "0x1400", "mps": 20}, None, id="full"),
        pytest.param({"system_id": "x"}, "'host' is required", id="no-host"),
        pytest.param({"host": "h"}, "'system_id' is required", id="no-system-id"),
        pytest.param({**VALID, "system_id": "s" * 16}, "'system_id' is not in the expected form", id="long-system-id"),
        pytest.param({**VALID, "port": "http"}, "'port' must be a whole number", id="port-not-a-number"),
        pytest.param({**VALID, "port": 70000}, "'port' must be at most 65535", id="port-out-of-range"),
        pytest.param({**VALID, "window": 0}, "'window' must be at least 1", id="window-zero"),
        pytest.param({**VALID, "pe_id_tlv": "0xZZ"}, "'pe_id_tlv' is not in the expected form", id="bad-tlv"),
        pytest.param({**VALID, "pe_id_tlv": "99999"}, "'pe_id_tlv' must be a TLV tag", id="tlv-out-of-range"),
        pytest.param({**VALID, "hostname": "x"}, "unknown option 'hostname'", id="unknown-option"),
        pytest.param({**VALID, "password_env": "DJANGO_SECRET_KEY"}, "matching SMPP_", id="foreign-secret"),
        pytest.param({**VALID, "password_env": "smpp_lower"}, "matching SMPP_", id="not-a-variable-name"),
        pytest.param({**VALID, "password": "hunter2"}, "would hold a credential", id="literal-password"),
    ],
)
def test_shortcode_options_are_checked_when_staff_save_them(options, error):
    errors = provider_config_errors("smpp", options)
    if error is None:
        assert errors == []
    else:
        assert any(error in message for message in errors), errors


@pytest.mark.django_db
def test_the_deliver_task_leaves_an_smpp_message_queued_for_the_bind():
    # given
    message = OutboundMessageFactory(provider="smpp")

    # when
    outcome = deliver.apply(args=[message.id]).get()

    # then
    assert outcome == "skipped"
    assert Message.objects.get(id=message.id).status == Status.QUEUED


# The codec ------------------------------------------------------------------------------


def test_a_pdu_survives_encoding_with_vendor_tlvs():
    request = pdu.Pdu(
        pdu.SUBMIT_SM,
        7,
        fields={"source_addr": "MYBRND", "destination_addr": "919876543210", "short_message": b"hi", "data_coding": 8},
        tlvs={0x1400: b"1101234567890123456"},
    )
    decoded = pdu.decode(pdu.encode(request))
    assert (decoded.name, decoded.sequence, decoded.tlvs) == ("submit_sm", 7, {0x1400: b"1101234567890123456"})
    assert decoded.fields["short_message"] == b"hi" and decoded.fields["data_coding"] == 8


@pytest.mark.parametrize(
    ("data", "why"),
    [
        pytest.param(b"\x00\x00\x00\x10", "shorter than a PDU header", id="short"),
        pytest.param(b"\x00\x00\x00\x20" + b"\x00" * 12, "command_length 32", id="length-lies"),
        pytest.param(
            b"\x00\x00\x00\x15\x80\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01abcde", "not NUL-terminated", id="no-nul"
        ),
        pytest.param(
            b"\x00\x00\x00\x17\x80\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01a\x00\x14\x00\x00\x09\x00",
            "runs past",
            id="tlv-too-long",
        ),
    ],
)
def test_malformed_bytes_are_a_pdu_error(data, why):
    with pytest.raises(pdu.PduError, match=why):
        pdu.decode(data)


@pytest.mark.parametrize("length", [0, 15, 70_001, 2**31])
def test_an_impossible_command_length_breaks_the_stream(length):
    with pytest.raises(pdu.PduError):
        pdu.frame_length(length.to_bytes(4, "big"))


# Receipt text ---------------------------------------------------------------------------


def deliver_sm(text: str, esm_class: int = 0x04, tlvs: dict[int, bytes] | None = None) -> pdu.Pdu:
    fields = {"esm_class": esm_class, "short_message": text.encode()}
    return pdu.Pdu(pdu.DELIVER_SM, 1, fields=fields, tlvs=tlvs or {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "id:0A1B sub:001 dlvrd:001 submit date:2612011200 done date:2612011201 stat:DELIVRD err:000 text:Hi",
            ("0A1B", "DELIVRD", "", "2026-12-01 12:01:00+00:00"),
            id="appendix-b",
        ),
        pytest.param(
            "ID:77 SUB:001 DLVRD:000 SUBMIT DATE:261201120000 DONE DATE:261201120159 STAT:UNDELIV ERR:034 Text:x",
            ("77", "UNDELIV", "034", "2026-12-01 12:01:59+00:00"),
            id="upper-case-12-digit-dates",
        ),
        pytest.param("id:5 stat:rejectd", ("5", "REJECTD", "", "None"), id="minimal"),
    ],
)
def test_receipt_text_is_read_as_smscs_write_it(text, expected):
    receipt = receipt_parse(deliver_sm(text))
    assert (receipt.smsc_message_id, receipt.provider_status, receipt.error_code, str(receipt.done_at)) == expected


def test_the_tlvs_win_over_the_text_and_the_network_error_code_is_read():
    message = deliver_sm(
        "id:WRONG stat:DELIVRD",
        tlvs={
            pdu.TLV_RECEIPTED_MESSAGE_ID: b"abc\x00",
            pdu.TLV_MESSAGE_STATE: b"\x05",
            pdu.TLV_NETWORK_ERROR_CODE: b"\x03\x00\x22",
        },
    )
    receipt = receipt_parse(message)
    assert (receipt.smsc_message_id, receipt.provider_status, receipt.error_code) == ("abc", "5", "34")


@pytest.mark.parametrize(
    ("message", "receipt"),
    [
        pytest.param(deliver_sm("hello", esm_class=0), False, id="mo"),
        pytest.param(deliver_sm("id is 5, stat please", esm_class=0), False, id="mo-that-mentions-id"),
        pytest.param(deliver_sm("anything", esm_class=0x04), True, id="esm-class"),
        pytest.param(deliver_sm("id:1 stat:DELIVRD", esm_class=0), True, id="text-only"),
        pytest.param(deliver_sm("", esm_class=0, tlvs={pdu.TLV_MESSAGE_STATE: b"\x02"}), True, id="tlv-only"),
    ],
)
def test_a_receipt_is_told_from_an_mo(message, receipt):
    assert is_receipt(message) is receipt


@pytest.mark.parametrize(
    ("given", "forms"),
    [
        ("1A2B3C", ["1a2b3c", "1715004"]),
        ("1715004", ["1715004", "24203268", "1a2b3c"]),
        ("0042", ["0042", "66", "2a", "42"]),
        ("msg-7", ["msg-7"]),
    ],
)
def test_an_smsc_id_is_matched_as_written_first_then_in_its_other_base(given, forms):
    assert smsc_id_forms(given) == forms

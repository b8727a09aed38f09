"""
Delivery receipts over the bind, against a real SMSC on 127.0.0.1: recognised in every
form an SMSC sends them, matched to the part's SMSC id in hex or decimal, and recorded
through the same service as an HTTP report (forward only, duplicates change nothing).
"""

import pytest

from delivery.models import DeliveryReport, Message
from delivery.providers import get_provider
from delivery.statuses import Status
from delivery.tests.factories import OutboundMessageFactory
from smpp_gateway.models import SubmittedPart
from smpp_gateway.tests.conftest import run_until
from smpp_gateway.tests.smsc import HOLD


def sent_message(bind, smsc, body: str = "Your balance is Rs 120.00") -> tuple[Message, list[str]]:
    """A message the bind submitted and the SMSC accepted; with the SMSC ids of its parts."""
    message = OutboundMessageFactory(provider="smpp", shortcode="57675", phone="+919876543210", body=body)
    before = len(smsc.accepted)
    run_until(bind, lambda: Message.objects.get(id=message.id).status == Status.SENT, what="sent")
    return message, [submit.message_id for submit in smsc.accepted[before:]]


def stored(message: Message) -> Message:
    return Message.objects.get(id=message.id)


def answered(smsc, sequence):
    return lambda: sequence in smsc.deliver_responses


@pytest.mark.parametrize("form", ["text", "tlv", "bare"])
@pytest.mark.django_db
def test_a_receipt_in_any_form_moves_the_message(bind, smsc, form):
    # given
    message, (smsc_id,) = sent_message(bind, smsc)

    # when
    sequence = smsc.receipt(smsc_id, "DELIVRD", form=form, state=2)
    run_until(bind, answered(smsc, sequence), what="receipt answered")

    # then
    assert stored(message).status == Status.DELIVERED
    (report,) = DeliveryReport.objects.all()
    assert (report.message_id, report.provider, report.applied) == (message.id, "smpp", True)
    assert report.provider_status == ("2" if form == "tlv" else "DELIVRD")
    assert smsc.deliver_responses[sequence] == 0


@pytest.mark.parametrize(
    ("id_form", "written"),
    [
        pytest.param("hex", lambda smsc_id: str(int(smsc_id, 16)), id="hex-answer-decimal-receipt"),
        pytest.param("decimal", lambda smsc_id: format(int(smsc_id), "x"), id="decimal-answer-hex-receipt"),
        pytest.param("hex", lambda smsc_id: smsc_id.lower(), id="hex-answer-lower-case-receipt"),
        pytest.param("decimal", lambda smsc_id: "000" + format(int(smsc_id), "X"), id="padded-hex-receipt"),
    ],
)
@pytest.mark.django_db
def test_a_receipt_matches_the_smsc_id_in_hex_or_decimal(bind, smsc, id_form, written):
    # given: an SMSC that answers submit_sm in one form and writes receipts in the other
    smsc.id_form = id_form
    message, (smsc_id,) = sent_message(bind, smsc)

    # when
    sequence = smsc.receipt(written(smsc_id), "DELIVRD")
    run_until(bind, answered(smsc, sequence), what="receipt answered")

    # then
    assert stored(message).status == Status.DELIVERED


@pytest.mark.parametrize(
    ("form", "word", "state", "status"),
    [
        ("text", "DELIVRD", None, Status.DELIVERED),
        ("text", "UNDELIV", None, Status.UNDELIVERED),
        ("text", "EXPIRED", None, Status.UNDELIVERED),
        ("text", "DELETED", None, Status.UNDELIVERED),
        ("text", "REJECTD", None, Status.REJECTED),
        ("text", "ACCEPTD", None, Status.SENT),
        ("text", "UNKNOWN", None, Status.SENT),
        ("text", "ENROUTE", None, Status.SENT),
        ("tlv", "", 1, Status.SENT),
        ("tlv", "", 2, Status.DELIVERED),
        ("tlv", "", 3, Status.UNDELIVERED),
        ("tlv", "", 4, Status.UNDELIVERED),
        ("tlv", "", 5, Status.UNDELIVERED),
        ("tlv", "", 6, Status.SENT),
        ("tlv", "", 7, Status.SENT),
        ("tlv", "", 8, Status.REJECTED),
    ],
)
@pytest.mark.django_db
def test_every_receipt_state_has_its_status(bind, smsc, form, word, state, status):
    # given
    message, (smsc_id,) = sent_message(bind, smsc)

    # when
    sequence = smsc.receipt(smsc_id, word, form=form, state=state)
    run_until(bind, answered(smsc, sequence), what="receipt answered")

    # then
    assert stored(message).status == status
    assert DeliveryReport.objects.get().status == status


def test_every_state_the_provider_maps_is_in_the_table_above():
    words = {"delivrd", "undeliv", "expired", "deleted", "rejectd", "acceptd", "unknown", "enroute"}
    assert set(get_provider("smpp").STATUS_MAP) == words | {str(state) for state in range(1, 9)}


@pytest.mark.django_db
def test_an_error_code_in_the_receipt_is_kept(bind, smsc):
    # given
    message, (smsc_id,) = sent_message(bind, smsc)

    # when
    sequence = smsc.receipt(smsc_id, "UNDELIV", err="034")
    run_until(bind, answered(smsc, sequence), what="receipt answered")

    # then
    assert (stored(message).status, stored(message).error_code) == (Status.UNDELIVERED, "034")


@pytest.mark.django_db
def test_receipts_out_of_order_only_move_forward(bind, smsc):
    # given: two messages
    first, (first_id,) = sent_message(bind, smsc, "first")
    second, (second_id,) = sent_message(bind, smsc, "second")

    # when: the second's receipts come first; a late ENROUTE follows a DELIVRD, and a duplicate
    sequences = [
        smsc.receipt(second_id, "DELIVRD"),
        smsc.receipt(first_id, "UNDELIV", form="tlv", state=5),
        smsc.receipt(second_id, "ENROUTE"),
        smsc.receipt(first_id, "DELIVRD"),
        smsc.receipt(second_id, "DELIVRD"),
    ]
    run_until(bind, lambda: all(s in smsc.deliver_responses for s in sequences), what="receipts answered")

    # then: the first final word stays; every receipt is kept, only two applied
    assert (stored(first).status, stored(second).status) == (Status.UNDELIVERED, Status.DELIVERED)
    assert DeliveryReport.objects.count() == 5
    assert DeliveryReport.objects.filter(applied=True).count() == 2


@pytest.mark.django_db
def test_a_receipt_for_any_part_of_a_long_message_reaches_it(bind, smsc):
    # given
    message, part_ids = sent_message(bind, smsc, "p" * 300)
    assert len(part_ids) == 2

    # when: the second part's receipt
    sequence = smsc.receipt(part_ids[1], "DELIVRD")
    run_until(bind, answered(smsc, sequence), what="receipt answered")

    # then
    assert stored(message).status == Status.DELIVERED


@pytest.mark.parametrize("written", [str.upper, lambda smsc_id: str(int(smsc_id, 16))], ids=["as-answered", "decimal"])
@pytest.mark.django_db
def test_a_receipt_before_the_submit_answer_is_applied_when_the_id_arrives(bind, smsc, written):
    # given: the SMSC holds its answer to the submit and sends the receipt first
    smsc.answers.append(HOLD)
    message = OutboundMessageFactory(provider="smpp", shortcode="57675", phone="+919876543210", body="early")
    run_until(bind, lambda: len(smsc.submits) == 1, what="submitted")
    upcoming_id = "1A2B3C"  # the id the test SMSC gives its first accepted part
    sequence = smsc.receipt(written(upcoming_id), "DELIVRD")
    run_until(bind, answered(smsc, sequence), what="receipt answered")
    assert DeliveryReport.objects.get().message_id is None

    # when
    smsc.release_held()
    run_until(bind, lambda: stored(message).status == Status.DELIVERED, what="delivered")

    # then
    assert smsc.accepted[0].message_id == upcoming_id
    assert DeliveryReport.objects.get().message_id == message.id
    assert stored(message).provider_message_id == upcoming_id


@pytest.mark.django_db
def test_a_receipt_for_no_message_of_ours_is_kept_unmatched_and_answered(bind, smsc):
    # given
    run_until(bind, lambda: bind.bound, what="bound")

    # when
    sequence = smsc.receipt("FFFF01", "DELIVRD")
    run_until(bind, answered(smsc, sequence), what="receipt answered")

    # then
    report = DeliveryReport.objects.get()
    assert (report.message_id, report.provider_message_id, report.applied) == (None, "ffff01", False)
    assert smsc.deliver_responses[sequence] == 0


@pytest.mark.django_db
def test_a_receipt_reaches_only_its_own_binds_messages(bind, smsc):
    # given: the same SMSC id known on another shortcode's bind
    message, (smsc_id,) = sent_message(bind, smsc)
    other = OutboundMessageFactory(provider="smpp", shortcode="57676", status=Status.SENT)
    SubmittedPart.objects.create(message=other, shortcode="57676", part=1, smsc_message_id=smsc_id.lower())

    # when
    sequence = smsc.receipt(smsc_id, "DELIVRD")
    run_until(bind, answered(smsc, sequence), what="receipt answered")

    # then
    assert (stored(message).status, stored(other).status) == (Status.DELIVERED, Status.SENT)

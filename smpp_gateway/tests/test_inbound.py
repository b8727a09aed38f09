"""
MO over the bind, against a real SMSC on 127.0.0.1: a deliver_sm becomes an inbound
message exactly as a webhook's would, a concatenated one once whole, and it is answered
only once stored.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from commands.tests.factories import CommandFactory
from delivery.models import Message
from delivery.statuses import Direction, Status
from smpp_gateway.inbound import CONCAT_WINDOW, inbound_parts_purge
from smpp_gateway.models import InboundPart
from smpp_gateway.tests.conftest import run_until

ESME_ROK, ESME_RX_P_APPN = 0x00, 0x65


def answered(smsc, *sequences):
    return lambda: all(sequence in smsc.deliver_responses for sequence in sequences)


def inbound() -> list[Message]:
    return list(Message.objects.filter(direction=Direction.INBOUND).order_by("id"))


def udh8(total: int, seq: int, reference: int = 0x07) -> bytes:
    return bytes((5, 0, 3, reference, total, seq))


def udh16(total: int, seq: int, reference: int = 0x1234) -> bytes:
    return bytes((6, 8, 4, reference >> 8, reference & 0xFF, total, seq))


@pytest.mark.parametrize(
    ("octets", "data_coding", "text"),
    [
        pytest.param(b"BAL", 0, "BAL", id="gsm7"),
        pytest.param(b"5\x1b\x65 \x00\x5f", 0, "5€ @§", id="gsm7-escape-at-and-section"),
        pytest.param("बैलेंस 2".encode("utf-16-be"), 8, "बैलेंस 2", id="ucs2"),
        pytest.param("café".encode("latin-1"), 3, "café", id="latin-1"),
    ],
)
@pytest.mark.django_db
def test_an_mo_is_stored_as_an_inbound_message_then_answered(bind, smsc, octets, data_coding, text):
    # given
    run_until(bind, lambda: bind.bound, what="bound")

    # when
    sequence = smsc.mo(octets, data_coding=data_coding)
    run_until(bind, answered(smsc, sequence), what="deliver_sm_resp")

    # then
    (message,) = inbound()
    assert (message.phone, message.shortcode, message.body) == ("+919876543210", "57675", text)
    assert (message.provider, message.status) == ("smpp", Status.RECEIVED)
    assert message.raw_payload["pdu"] == "deliver_sm"
    assert smsc.deliver_responses[sequence] == ESME_ROK


@pytest.mark.django_db
def test_an_mo_delivered_again_is_stored_once(bind, smsc):
    # given: the SMSC delivers the same MO twice (our first answer lost, say)
    run_until(bind, lambda: bind.bound, what="bound")

    # when
    first, again = smsc.mo(b"2"), smsc.mo(b"2")
    run_until(bind, answered(smsc, first, again), what="both answered")

    # then: the webhook's dedupe holds here too
    assert [message.body for message in inbound()] == ["2"]
    assert smsc.deliver_responses == {first: ESME_ROK, again: ESME_ROK}


@pytest.mark.django_db
def test_an_mo_is_handled_and_answered_as_a_webhooks_would_be(
    bind, smsc, smpp_shortcode, django_capture_on_commit_callbacks
):
    # given
    CommandFactory(shortcode=smpp_shortcode, code="1", handler_key="reply", config={"text": "Welcome"})
    run_until(bind, lambda: bind.bound, what="bound")

    # when: the handling queued on commit runs
    with django_capture_on_commit_callbacks(execute=True):
        sequence = smsc.mo(b"1")
        run_until(bind, answered(smsc, sequence), what="deliver_sm_resp")

    # then: the reply waits for the bind, which submits it
    (reply,) = Message.objects.filter(direction=Direction.OUTBOUND)
    assert (reply.body, reply.provider, reply.in_reply_to_id) == ("Welcome", "smpp", inbound()[0].id)
    run_until(bind, lambda: len(smsc.accepted) == 1, what="reply submitted")
    assert smsc.accepted[0].payload == b"Welcome"


UCS2_TEXT = "नमस्ते 😀".encode("utf-16-be")
SURROGATE_CUT = len(UCS2_TEXT) - 2  # between the emoji's two halves


@pytest.mark.parametrize(
    ("chunks", "udh", "data_coding", "order", "text"),
    [
        pytest.param(
            [b"Hello ", b"long ", b"world"], udh8, 0, [2, 0, 1], "Hello long world", id="udh-8bit-out-of-order"
        ),
        pytest.param(
            [b"Price 5\x1b", b"\x65 only"], udh16, 0, [1, 0], "Price 5€ only", id="udh-16bit-escape-cut-by-the-sender"
        ),
        pytest.param(
            [UCS2_TEXT[:SURROGATE_CUT], UCS2_TEXT[SURROGATE_CUT:]],
            udh8,
            8,
            [0, 1],
            "नमस्ते 😀",
            id="ucs2-surrogate-pair-cut-by-the-sender",
        ),
    ],
)
@pytest.mark.django_db
def test_a_concatenated_mo_is_stored_once_whole(bind, smsc, chunks, udh, data_coding, order, text):
    # given
    run_until(bind, lambda: bind.bound, what="bound")
    total = len(chunks)

    # when: parts arrive out of order, the first of them twice
    sequences = [
        smsc.mo(udh(total, index + 1) + chunks[index], esm_class=0x40, data_coding=data_coding)
        for index in [*order, order[0]]
    ]
    run_until(bind, answered(smsc, *sequences), what="every part answered")

    # then
    assert [message.body for message in inbound()] == [text]
    assert list(InboundPart.objects.values_list("assembled", flat=True)) == [True] * total
    assert set(smsc.deliver_responses.values()) == {ESME_ROK}


@pytest.mark.django_db
def test_a_concatenated_mo_by_sar_tlvs(bind, smsc):
    # given
    run_until(bind, lambda: bind.bound, what="bound")

    # when
    first = smsc.mo(b"STOP ", sar_msg_ref_num=300, sar_total_segments=2, sar_segment_seqnum=1)
    run_until(bind, answered(smsc, first), what="first part answered")
    assert inbound() == []
    second = smsc.mo(b"ALL", sar_msg_ref_num=300, sar_total_segments=2, sar_segment_seqnum=2)
    run_until(bind, answered(smsc, second), what="second part answered")

    # then
    assert [message.body for message in inbound()] == ["STOP ALL"]


@pytest.mark.django_db
def test_an_mo_that_can_never_be_stored_is_refused_for_good(bind, smsc):
    # given
    run_until(bind, lambda: bind.bound, what="bound")

    # when: no phone number at all
    sequence = smsc.mo(b"1", source="")
    run_until(bind, answered(smsc, sequence), what="answered")

    # then: a permanent application error, so the SMSC stops delivering it
    assert smsc.deliver_responses[sequence] == ESME_RX_P_APPN
    assert inbound() == []


@pytest.mark.django_db
def test_parts_are_purged_after_the_concatenation_window(bind, smsc):
    # given: an assembled MO, and a lone part of one that never completed, both old
    run_until(bind, lambda: bind.bound, what="bound")
    sequences = [smsc.mo(udh8(2, n) + b"ab", esm_class=0x40) for n in (1, 2)]
    sequences.append(smsc.mo(udh8(3, 1, reference=9) + b"cd", esm_class=0x40))
    run_until(bind, answered(smsc, *sequences), what="parts answered")
    assert InboundPart.objects.count() == 3
    InboundPart.objects.update(received_at=timezone.now() - CONCAT_WINDOW - timedelta(seconds=1))

    # when
    purged = inbound_parts_purge(shortcode="57675")

    # then
    assert purged == 3 and not InboundPart.objects.exists()
    assert [message.body for message in inbound()] == ["abab"]

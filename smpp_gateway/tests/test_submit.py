"""
Sending through the bind, against a real SMSC on 127.0.0.1: what it binds with, the
submit_sm PDUs the SMSC reads (encoding, UDH parts, addresses, DLT TLVs), the SMSC ids
recorded, and what happens when the SMSC throttles, refuses, holds back or hangs up.
"""

from collections import Counter

import pytest

from commands.models import Shortcode
from conftest import wait_until
from delivery.models import ChannelLog, Message
from delivery.outbound import message_send
from delivery.segments import gsm7_decode, segment_info
from delivery.send_options import SendOptions
from delivery.statuses import Status
from delivery.tests.factories import OutboundMessageFactory
from smpp_gateway.bind import Bind
from smpp_gateway.models import SubmittedPart
from smpp_gateway.tests.conftest import PASSWORD, run_until
from smpp_gateway.tests.smsc import DROP, HOLD, TestSMSC

THROTTLED, MSGQFUL = 0x58, 0x14


def queued(body: str = "Your balance is Rs 120.00", **fields) -> Message:
    return OutboundMessageFactory(provider="smpp", shortcode="57675", phone="+919876543210", body=body, **fields)


def status_of(message: Message) -> str:
    return Message.objects.get(id=message.id).status


def all_sent(*messages: Message):
    return lambda: all(status_of(message) == Status.SENT for message in messages)


def options_set(**options) -> None:
    shortcode = Shortcode.objects.get(number="57675")
    shortcode.provider_config = {**shortcode.provider_config, **options}
    shortcode.save()


# Binding ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_bind_is_a_transceiver_with_the_shortcodes_credentials(bind, smsc):
    # when
    run_until(bind, lambda: bind.bound, what="bound")

    # then
    assert smsc.binds == [{"system_id": "smsgate", "system_type": "OTP", "interface_version": 0x34, "status": 0}]
    assert smsc.received[0][0] == "bind_transceiver"


@pytest.mark.django_db
def test_a_refused_bind_is_tried_again_with_growing_backoff(smpp_shortcode, clock, monkeypatch):
    # given: the SMSC knows another password
    monkeypatch.setenv("SMPP_TEST_PASSWORD", "wrong-password")
    smsc = TestSMSC(password="s3cret-pw").start()
    options_set(port=smsc.port)
    bind = Bind("57675", clock=clock, sleep=clock.sleep, poll_seconds=0.01)
    try:
        # when
        for _ in range(8):
            bind.step()
    finally:
        smsc.stop()

    # then: every attempt refused, each wait twice the last, up to a minute
    assert [attempt["status"] for attempt in smsc.binds] == [0x0E] * 8
    assert clock.sleeps == [1, 2, 4, 8, 16, 32, 60, 60]
    assert not bind.bound


@pytest.mark.django_db
def test_an_unreachable_smsc_is_retried_with_backoff_and_then_bound(smpp_shortcode, clock):
    # given: nothing listens on the configured port at first
    smsc = TestSMSC(password="s3cret-pw")
    options_set(port=smsc.port)
    smsc._listener.close()
    bind = Bind("57675", clock=clock, sleep=clock.sleep, poll_seconds=0.01)
    bind.step()
    bind.step()
    assert clock.sleeps == [1, 2] and not bind.bound

    # when: an SMSC answers there
    smsc = TestSMSC(password="s3cret-pw").start()
    options_set(port=smsc.port)
    try:
        run_until(bind, lambda: bind.bound, what="bound")
    finally:
        bind.stop(drain_seconds=0)
        smsc.stop()

    # then
    assert len(smsc.binds) == 1


@pytest.mark.django_db
def test_enquire_link_keeps_an_idle_bind_alive_and_an_unanswered_one_is_rebound(bind, smsc, clock):
    # given
    run_until(bind, lambda: bind.bound, what="bound")

    # when: idle past the keep-alive period
    clock.travel(31)
    run_until(bind, lambda: smsc.enquire_links == 1 and bind.enquire_sent_at is None, what="enquire_link answered")

    # then: answered, still the first bind
    assert len(smsc.binds) == 1

    # when: the SMSC stops answering enquire_link
    smsc.answer_enquire_link = False
    clock.travel(31)
    run_until(bind, lambda: smsc.enquire_links == 2, what="second enquire_link")
    clock.travel(31)
    run_until(bind, lambda: len(smsc.binds) == 2 and bind.bound, what="rebound")

    # then: the silent link was dropped and bound again
    assert bind.binds == 2


@pytest.mark.django_db
def test_the_smscs_enquire_link_is_answered_and_its_unbind_leads_to_a_new_bind(bind, smsc):
    # given
    run_until(bind, lambda: bind.bound, what="bound")

    # when
    enquire = smsc.push("enquire_link")
    run_until(bind, lambda: enquire in smsc.deliver_responses, what="enquire_link_resp")
    unbind = smsc.push("unbind")
    run_until(bind, lambda: unbind in smsc.deliver_responses and bind.binds == 2, what="rebound")

    # then
    assert smsc.deliver_responses == {enquire: 0, unbind: 0}
    assert len(smsc.binds) == 2


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\x00\x00\x00\x05junk", id="impossible-length"),
        pytest.param(b"\xff\xff\xff\xff" + b"\x00" * 12, id="huge-length"),
        pytest.param(b"\x00\x00\x00\x14\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x09abcd", id="unterminated-field"),
    ],
)
@pytest.mark.django_db
def test_bytes_that_are_no_pdu_drop_the_connection_and_the_bind_comes_back(bind, smsc, garbage):
    # given
    message = queued("after the noise")
    run_until(bind, all_sent(message), what="sent")
    smsc.accepted.clear()

    # when
    smsc.push_bytes(garbage)
    run_until(bind, lambda: bind.binds == 2, what="rebound")
    later = queued("still sent")
    run_until(bind, all_sent(later), what="sent after")

    # then
    assert [submit.payload for submit in smsc.accepted] == [b"still sent"]


# What the SMSC reads -------------------------------------------------------------------


def gsm_parts_text(submits) -> str:
    return gsm7_decode(b"".join(submit.payload for submit in submits))


@pytest.mark.parametrize(
    ("body", "data_coding", "parts", "capacity"),
    [
        pytest.param("A" * 160, 0, 1, 160, id="gsm7-single-160"),
        pytest.param("A" * 152 + "€" + "B" * 20, 0, 2, 153, id="gsm7-escape-at-the-boundary"),
        pytest.param("{braces} [and] ~tilde~ " * 20, 0, 4, 153, id="gsm7-many-escapes"),
        pytest.param("नमस्ते " * 30, 8, 4, 134, id="ucs2-devanagari"),
        pytest.param("a" * 66 + "😀" + "b" * 10, 8, 2, 134, id="ucs2-emoji-at-the-boundary"),
        pytest.param("😀" * 67, 8, 3, 134, id="ucs2-67-emoji"),
    ],
)
@pytest.mark.django_db
def test_a_long_text_goes_as_udh_parts_that_never_cut_an_escape_or_an_emoji(
    bind, smsc, body, data_coding, parts, capacity
):
    # given
    message = queued(body)

    # when
    run_until(bind, all_sent(message), what="sent")

    # then: as many parts as the segment count, each within its capacity
    submits = smsc.accepted
    assert len(submits) == parts == segment_info(body).segments
    assert {submit.data_coding for submit in submits} == {data_coding}
    assert all(len(submit.payload) <= capacity for submit in submits)
    if parts > 1:
        udhs = [submit.udh for submit in submits]
        assert all(submit.esm_class & 0x40 for submit in submits)
        assert {udh[:4] for udh in udhs} == {bytes((5, 0, 3, message.id % 256))}
        assert [(udh[4], udh[5]) for udh in udhs] == [(parts, n) for n in range(1, parts + 1)]
    else:
        assert submits[0].udh == b"" and submits[0].esm_class == 0
    # no part ends inside an escape pair or a surrogate pair: each reads whole on its own
    if data_coding == 0:
        assert not any(submit.payload.endswith(b"\x1b") for submit in submits)
        assert gsm_parts_text(submits) == body
    else:
        assert "".join(submit.payload.decode("utf-16-be") for submit in submits) == body


@pytest.mark.django_db
def test_gsm7_goes_as_unpacked_septets_with_the_extension_escape(bind, smsc):
    # given
    message = queued("Rs 5€ {ok} @§")

    # when
    run_until(bind, all_sent(message), what="sent")

    # then: € is ESC 0x65, { ESC 0x28, @ 0x00, § 0x5F (not a backtick)
    (submit,) = smsc.accepted
    assert submit.payload == b"Rs 5\x1b\x65 \x1b\x28ok\x1b\x29 \x00\x5f"


@pytest.mark.parametrize(
    ("sender", "ton"),
    [pytest.param("", 3, id="the-shortcode-number"), pytest.param("MYBRND", 5, id="alphanumeric-header")],
)
@pytest.mark.django_db
def test_addresses_and_receipt_request(bind, smsc, sender, ton):
    # given
    message = queued(provider_options=SendOptions(sender=sender).to_json())

    # when
    run_until(bind, all_sent(message), what="sent")

    # then
    (submit,) = smsc.accepted
    assert (submit.source_addr, submit.source_addr_ton) == (sender or "57675", ton)
    assert (submit.destination_addr, submit.dest_addr_ton) == ("919876543210", 1)
    assert submit.registered_delivery == 1


@pytest.mark.parametrize(
    ("options", "pe_tag", "template_tag"),
    [
        pytest.param({}, 0x1400, 0x1401, id="default-tags"),
        pytest.param({"pe_id_tlv": "0x1500", "template_id_tlv": "5377"}, 0x1500, 0x1501, id="configured-tags"),
    ],
)
@pytest.mark.django_db
def test_the_dlt_ids_travel_in_the_shortcodes_tlvs(bind, smsc, options, pe_tag, template_tag):
    # given
    options_set(**options)
    message = queued("x" * 200, dlt_entity_id="1101234567890123456", dlt_template_id="1107161234567890123")

    # when
    run_until(bind, all_sent(message), what="sent")

    # then: on every part
    assert len(smsc.accepted) == 2
    for submit in smsc.accepted:
        assert submit.tlvs[pe_tag] == b"1101234567890123456"
        assert submit.tlvs[template_tag] == b"1107161234567890123"


# What is recorded ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_smsc_id_is_recorded_and_the_message_is_sent(bind, smsc):
    # given
    message = queued("y" * 300)

    # when
    run_until(bind, all_sent(message), what="sent")

    # then: the first part's id is the message's; every part's id is kept for its receipts
    stored = Message.objects.get(id=message.id)
    assert stored.provider_message_id == smsc.accepted[0].message_id
    assert stored.sent_at is not None and stored.attempts == 1
    assert list(SubmittedPart.objects.filter(message=message).values_list("part", "smsc_message_id")) == [
        (1, smsc.accepted[0].message_id.lower()),
        (2, smsc.accepted[1].message_id.lower()),
    ]


@pytest.mark.django_db
def test_the_deliver_task_hands_smpp_messages_to_the_bind(bind, smsc, django_capture_on_commit_callbacks):
    # given: a reply stored as any other, its deliver task run
    with django_capture_on_commit_callbacks(execute=True):
        message = message_send(shortcode="57675", phone="+919876543210", body="Hello", provider="smpp")

    # then: the task left it queued, for the bind
    assert status_of(message) == Status.QUEUED
    assert Message.objects.get(id=message.id).attempts == 0

    # when
    run_until(bind, all_sent(message), what="sent")

    # then
    assert [submit.payload for submit in smsc.accepted] == [b"Hello"]


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (0x0B, "ESME_RINVDSTADR", "ESME_RINVDSTADR (0x0000000b)"),
        (0x45, "ESME_RSUBMITFAIL", "ESME_RSUBMITFAIL (0x00000045)"),
        (0x401, "0x00000401", "SMPP status (0x00000401)"),
    ],
)
@pytest.mark.django_db
def test_another_error_fails_the_message_with_the_smpp_status_as_its_reason(bind, smsc, status, code, reason):
    # given: a two-part message whose second part is refused, and one after it
    refused, after = queued("z" * 200), queued("next")
    smsc.answers.extend(["ok", status])

    # when
    run_until(bind, lambda: status_of(refused) == Status.FAILED and status_of(after) == Status.SENT, what="settled")

    # then
    stored = Message.objects.get(id=refused.id)
    assert (stored.error_code, stored.error_message) == (code, f"SMSC refused: {reason}")
    assert len(smsc.submits) == 3  # nothing was resent


@pytest.mark.parametrize("window", [1, 3, 10])
@pytest.mark.django_db
def test_throttled_then_hung_up_everything_is_resent_once_nothing_lost_nothing_doubled(bind, smsc, clock, window):
    # given: four parts (a long message and two short ones); the SMSC throttles, is full,
    # accepts one, then hangs up on the next submit
    options_set(window=window)
    messages = [queued("L" * 200), queued("short one"), queued("short two")]
    smsc.answers.extend([THROTTLED, MSGQFUL, "ok", DROP])

    # when
    run_until(bind, all_sent(*messages), what="all sent")

    # then: each part accepted exactly once, in one piece per message id
    accepted = Counter((submit.destination_addr, submit.short_message) for submit in smsc.accepted)
    assert len(smsc.accepted) == 4 and set(accepted.values()) == {1}
    stored = Message.objects.filter(id__in=[m.id for m in messages]).order_by("id")
    first_parts = {submit.message_id for submit in smsc.accepted if submit.udh[-1:] in (b"", b"\x01")}
    assert {m.provider_message_id for m in stored} == first_parts and len(first_parts) == 3
    assert SubmittedPart.objects.count() == 4
    # and it waited: backoff after the throttle, then again before rebinding
    assert smsc.drops == 1 and len(smsc.binds) == 2
    assert 1.0 in clock.sleeps


@pytest.mark.django_db
def test_every_submit_and_its_answer_is_in_the_channel_log_without_the_password(bind, smsc):
    # given
    message = queued("hello")
    smsc.answers.extend([THROTTLED])

    # when
    run_until(bind, all_sent(message), what="sent")

    # then: the throttled attempt and the accepted one
    logs = list(ChannelLog.objects.filter(message=message).order_by("id"))
    assert [log.kind for log in logs] == ["send", "send"]
    assert "ESME_RTHROTTLED" in logs[0].response
    assert f"message_id={smsc.accepted[0].message_id}" in logs[1].response
    assert all(log.url == f"smpp://127.0.0.1:{smsc.port}" and "919876543210" in log.request for log in logs)
    assert not any(PASSWORD in f"{log.request} {log.response} {log.error}" for log in logs)


@pytest.mark.django_db
def test_throttling_backs_off_doubling_and_resubmits(bind, smsc, clock):
    # given
    message = queued("hello")
    smsc.answers.extend([THROTTLED, THROTTLED, MSGQFUL])

    # when
    run_until(bind, all_sent(message), what="sent")

    # then
    assert [sleep for sleep in clock.sleeps if sleep >= 1] == [1, 2, 4]
    assert len(smsc.submits) == 4 and len(smsc.accepted) == 1


@pytest.mark.django_db
def test_no_more_than_the_window_is_outstanding(bind, smsc):
    # given: a window of 2, an SMSC that holds its answers
    options_set(window=2)
    messages = [queued(f"message {n}") for n in range(5)]
    smsc.answers.extend([HOLD] * 5)

    # when
    run_until(bind, lambda: len(smsc.submits) == 2, what="two submits")
    for _ in range(20):
        bind.step()

    # then: two outstanding, the rest wait
    assert len(smsc.submits) == 2

    # when: the SMSC answers the two
    smsc.release_held()
    run_until(bind, lambda: len(smsc.submits) == 4, what="two more submits")
    for _ in range(20):
        bind.step()

    # then: two more went, no more
    assert len(smsc.submits) == 4

    # when
    smsc.release_held()
    run_until(bind, lambda: len(smsc.submits) == 5, what="the last submit")
    smsc.release_held()
    run_until(bind, all_sent(*messages), what="all sent")

    # then
    assert len(smsc.accepted) == 5


@pytest.mark.parametrize(("mps", "waited"), [(1, 5.0), (2, 2.5), (5, 1.0)])
@pytest.mark.django_db
def test_throughput_is_the_shortcodes_rate_charged_per_segment(bind, smsc, clock, mps, waited):
    # given: three two-part messages, six segments
    options_set(mps=mps)
    messages = [queued("m" * 200) for _ in range(3)]

    # when
    run_until(bind, all_sent(*messages), what="all sent")

    # then: one segment at once, then one every 1/mps seconds
    assert len(smsc.accepted) == 6
    assert sum(clock.sleeps) == pytest.approx(waited)


@pytest.mark.django_db
def test_a_restarted_bind_takes_back_what_it_left_and_resends_only_unaccepted_parts(smpp_shortcode, smsc, clock):
    # given: a two-part message left `sending` by a bind that died after its first part was accepted
    message = queued("w" * 200, status=Status.SENDING, attempts=1)
    SubmittedPart.objects.create(message=message, shortcode="57675", part=1, smsc_message_id="abc001")

    # when
    bind = Bind("57675", clock=clock, sleep=clock.sleep, poll_seconds=0.01)
    bind.start()
    try:
        run_until(bind, all_sent(message), what="sent")
    finally:
        bind.stop(drain_seconds=0)

    # then: only the second part went, and the message carries the first part's id
    assert [submit.udh[-1] for submit in smsc.accepted] == [2]
    assert Message.objects.get(id=message.id).provider_message_id == "abc001"


@pytest.mark.django_db
def test_stopping_gives_back_claimed_messages_unsent(bind, smsc):
    # given: a message claimed, its submit held by the SMSC
    message = queued("held")
    smsc.answers.append(HOLD)
    run_until(bind, lambda: len(smsc.submits) == 1, what="submitted")
    assert status_of(message) == Status.SENDING

    # when
    bind.stop(drain_seconds=0)

    # then: queued again, not counted as an attempt
    stored = Message.objects.get(id=message.id)
    assert (stored.status, stored.attempts) == (Status.QUEUED, 0)
    wait_until(lambda: smsc.received[-1][0] == "unbind", timeout=5, what="unbind")

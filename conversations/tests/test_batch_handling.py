"""
Handling inbound SMS a batch at a time (inbound_batch_handle, the dispatcher's tasks):
each SMS answered once and in its phone's order, each reply sent once; what one message,
phone or send meets leaves the rest of the batch alone.
"""

import pytest
from celery.signals import task_prerun
from freezegun import freeze_time

from commands.services import REGISTRY_VERSION_KEY, registry_pinned, shortcode_get
from conftest import FakeResponse
from conversations.handling import inbound_batch_handle
from conversations.tests.factories import ASK_NAME, BALANCE, SHORTCODE, registered, service_shortcode
from delivery import outbound
from delivery.deliver import messages_throughput_take
from delivery.models import ChannelLog, DeliveryReport, Message
from delivery.send_options import SendOptions
from delivery.statuses import Direction, Status
from delivery.suppression import suppression_add, suppression_get, suppressions_find
from delivery.throttle import lock_acquire, lock_release, token_bucket_wait

pytestmark = pytest.mark.django_db

PHONES = [f"+91987650{n:04d}" for n in range(4)]


@pytest.fixture
def gateway(provider_server, settings):
    settings.GATEWAY_OUTBOUND_URL = f"{provider_server.url}/sms"
    settings.GATEWAY_API_KEY = "gw-api-key-123"
    outbound._deliver_here_paused_until.clear()
    service_shortcode(provider="generic")
    yield provider_server
    outbound._deliver_here_paused_until.clear()


def message_row(phone: str, text: str, **fields) -> Message:
    """A message of the shortcode on the generic provider; by default an inbound row as the webhook leaves it."""
    fields = {"direction": Direction.INBOUND, "status": Status.RECEIVED} | fields
    return Message.objects.create(shortcode=SHORTCODE, provider="generic", phone=phone, body=text, **fields)


def stored(phone: str, text: str) -> Message:
    return message_row(phone, text)


def reply_of(message: Message) -> Message:
    return Message.objects.get(direction=Direction.OUTBOUND, in_reply_to=message)


def sent_texts(gateway) -> list[tuple[str, str]]:
    return [(request.json()["to"], request.json()["message"]) for request in gateway.requests]


def test_a_batch_answers_each_sms_once_and_each_phone_in_order(gateway, django_capture_on_commit_callbacks):
    # given: three phones' balance requests and a registration typed in two SMS
    balances = [stored(phone, "2") for phone in PHONES[:3]]
    register, name = stored(PHONES[3], "1"), stored(PHONES[3], "Asha")
    batch = [*balances, register, name]
    # when
    with django_capture_on_commit_callbacks(execute=True):
        handled = inbound_batch_handle(message_ids=[m.id for m in batch])
    # then: one reply each, sent once, the registration's in the order it was typed
    assert handled.busy == []
    assert [handled.replies[m.id].body for m in batch] == [BALANCE] * 3 + [ASK_NAME, registered("Asha")]
    assert sorted(sent_texts(gateway)) == sorted((m.phone, reply_of(m).body) for m in batch)
    to_phone_3 = [text for to, text in sent_texts(gateway) if to == PHONES[3]]
    assert to_phone_3 == [ASK_NAME, registered("Asha")]
    # and: every reply stored `sent` with the gateway's id, its call in the channel log
    for message in batch:
        reply = reply_of(message)
        assert (reply.status, reply.attempts, reply.provider_message_id.startswith("gw-")) == ("sent", 1, True)
        assert ChannelLog.objects.filter(kind=ChannelLog.Kind.SEND, message=reply).count() == 1
    assert set(Message.objects.filter(id__in=[m.id for m in batch]).values_list("status", flat=True)) == {"handled"}
    # and: the batch run again answers nothing more
    with django_capture_on_commit_callbacks(execute=True):
        again = inbound_batch_handle(message_ids=[m.id for m in batch])
    assert (again.replies, len(gateway.requests)) == ({}, 5)


def test_a_busy_phone_is_handed_back_and_the_rest_answered(gateway, django_capture_on_commit_callbacks):
    # given: another run holds the first phone
    messages = [stored(phone, "2") for phone in PHONES[:3]]
    lock_key = f"phone:{SHORTCODE}:{PHONES[0]}"
    assert lock_acquire(lock_key, timeout=30)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            handled = inbound_batch_handle(message_ids=[m.id for m in messages])
    finally:
        lock_release(lock_key)
    # then: its SMS comes back untouched; the others are answered
    assert handled.busy == [messages[0].id]
    assert sorted(handled.replies) == [messages[1].id, messages[2].id]
    messages[0].refresh_from_db()
    assert messages[0].status == Status.RECEIVED
    assert [to for to, _ in sent_texts(gateway)] == PHONES[1:3]


def test_a_number_that_opts_out_before_its_first_attempt_gets_nothing(gateway, django_capture_on_commit_callbacks):
    # given: replies stored, and one number opting out before their first attempts
    messages = [stored(phone, "2") for phone in PHONES[:3]]
    with django_capture_on_commit_callbacks(execute=False) as first_attempts:
        inbound_batch_handle(message_ids=[m.id for m in messages])
    suppression_add(phone=PHONES[1], shortcode=SHORTCODE, keyword="STOP")
    # when
    for callback in first_attempts:
        callback()
    # then: that reply is refused, the others sent
    assert [reply_of(m).status for m in messages] == ["sent", "refused", "sent"]
    assert reply_of(messages[1]).error_code == "opted_out"
    assert [to for to, _ in sent_texts(gateway)] == [PHONES[0], PHONES[2]]


def test_an_opted_out_number_in_a_batch_is_refused_when_its_reply_is_stored(
    gateway, django_capture_on_commit_callbacks
):
    suppression_add(phone=PHONES[0], shortcode="", keyword="STOPALL")
    messages = [stored(phone, "2") for phone in PHONES[:2]]
    with django_capture_on_commit_callbacks(execute=True):
        inbound_batch_handle(message_ids=[m.id for m in messages])
    assert [(reply_of(m).status, reply_of(m).error_code) for m in messages] == [("refused", "opted_out"), ("sent", "")]
    assert [to for to, _ in sent_texts(gateway)] == [PHONES[1]]


@pytest.mark.parametrize(
    "response,status,attempts",
    [
        (FakeResponse(503, "busy"), "sent", 2),
        (FakeResponse(400, {"error": "invalid number"}), "failed", 1),
    ],
    ids=["transient: retried by the deliver task", "permanent: failed"],
)
def test_a_send_that_fails_in_a_batch_leaves_the_others_sent(
    gateway, django_capture_on_commit_callbacks, response, status, attempts
):
    # given: the gateway fails the second send of the batch
    gateway.script = [FakeResponse(200, {"id": f"gw-{n}"}) for n in range(4)]
    gateway.script[1] = response
    messages = [stored(phone, "2") for phone in PHONES[:3]]
    # when
    with django_capture_on_commit_callbacks(execute=True):
        inbound_batch_handle(message_ids=[m.id for m in messages])
    # then
    replies = [reply_of(m) for m in messages]
    assert [(r.status, r.attempts) for r in replies] == [("sent", 1), (status, attempts), ("sent", 1)]
    assert replies[0].provider_message_id == "gw-0"


def test_a_report_that_came_before_its_send_returned_is_applied(gateway, django_capture_on_commit_callbacks):
    # given: a delivery report for the id the gateway is about to give
    gateway.script = [FakeResponse(200, {"id": "gw-early"}), FakeResponse(200, {"id": "gw-other"})]
    DeliveryReport.objects.create(provider="generic", provider_message_id="gw-early", status="delivered")
    messages = [stored(phone, "2") for phone in PHONES[:2]]
    # when
    with django_capture_on_commit_callbacks(execute=True):
        inbound_batch_handle(message_ids=[m.id for m in messages])
    # then: it moved its message, and only its message
    assert [reply_of(m).status for m in messages] == ["delivered", "sent"]
    assert DeliveryReport.objects.get().message == reply_of(messages[0])


@pytest.mark.parametrize(
    "opted_out_on",
    [[], [SHORTCODE], [""], ["", SHORTCODE], ["56161"]],
    ids=["none", "this shortcode", "all shortcodes", "both", "another shortcode"],
)
def test_the_suppression_list_reads_the_same_for_one_number_or_many(db, opted_out_on):
    for shortcode in opted_out_on:
        suppression_add(phone=PHONES[0], shortcode=shortcode, keyword="STOP")
    pairs = {(PHONES[0], SHORTCODE), (PHONES[0], "56161"), (PHONES[1], SHORTCODE)}
    found = suppressions_find(pairs=pairs)
    for phone, shortcode in pairs:
        assert found.get((phone, shortcode)) == suppression_get(phone=phone, shortcode=shortcode)


def test_a_registry_edit_reaches_a_batch_at_its_next_lookup_after_it(gateway):
    from django.core.cache import cache

    with registry_pinned():
        before = shortcode_get(number=SHORTCODE)
        # when: another process edits the registry meanwhile
        cache.set(REGISTRY_VERSION_KEY, "edited-elsewhere", timeout=None)
        # then: the batch keeps the registry it started with
        assert shortcode_get(number=SHORTCODE) is before
    # and: the next lookup reads the edit
    assert shortcode_get(number=SHORTCODE) is not before


@pytest.mark.parametrize(
    "tokens_left,paid",
    [(10, 3), (3, 3), (2, 0)],
    ids=["a full bucket", "just enough", "too few: each takes its own as it is sent"],
)
def test_a_batch_takes_the_shortcodes_throughput_at_once_when_the_bucket_has_it(gateway, tokens_left, paid):
    # given: three replies of a 10-messages-a-second shortcode, part of this second's budget spent
    options = SendOptions(max_mps=10).to_json()
    replies = [
        message_row(phone, BALANCE, direction=Direction.OUTBOUND, status=Status.SENDING, provider_options=options)
        for phone in PHONES[:3]
    ]
    with freeze_time():
        if tokens_left < 10:
            assert token_bucket_wait(f"mps:{SHORTCODE}", rate=10, cost=10 - tokens_left) == 0
        # when
        taken = messages_throughput_take(replies)
        # then: all three paid for in one take, or none, the bucket untouched
        assert len(taken) == paid
        left = tokens_left - paid
        if left:
            assert token_bucket_wait(f"mps:{SHORTCODE}", rate=10, cost=left) == 0
        assert token_bucket_wait(f"mps:{SHORTCODE}", rate=10, cost=1) > 0


def test_after_a_gateway_failure_the_rest_of_the_batch_goes_to_the_deliver_task(
    gateway, django_capture_on_commit_callbacks
):
    # given: the gateway fails the batch's first send
    gateway.script = [FakeResponse(503, "busy"), *(FakeResponse(200, {"id": f"gw-{n}"}) for n in range(3))]
    messages = [stored(phone, "2") for phone in PHONES[:3]]
    tasks = []
    task_prerun.connect(note := lambda sender=None, args=None, **kw: tasks.append(args[0]), weak=False)
    try:
        # when
        with django_capture_on_commit_callbacks(execute=True):
            outcomes = inbound_batch_handle(message_ids=[m.id for m in messages])
    finally:
        task_prerun.disconnect(note)
    # then: the others are not tried here on the failing gateway, each is sent once by its task
    replies = [reply_of(m) for m in messages]
    assert tasks == [reply.id for reply in replies]
    assert [(r.status, r.attempts) for r in replies] == [("sent", 2), ("sent", 1), ("sent", 1)]
    assert len(gateway.requests) == 4
    assert sorted(outcomes.replies) == sorted(m.id for m in messages)


def test_a_batch_hands_back_what_it_did_not_reach_in_half_its_locks_time(gateway, settings, monkeypatch):
    from conversations import handling

    # given: handlers that take 10 s each, under phone locks of 30 s
    settings.PHONE_LOCK_SECONDS = 30
    messages = [stored(phone, "2") for phone in PHONES[:3]]
    real_step = handling.conversation_step
    with freeze_time() as clock:

        def slow_step(**kwargs):
            clock.tick(10)
            return real_step(**kwargs)

        monkeypatch.setattr(handling, "conversation_step", slow_step)
        # when
        handled = inbound_batch_handle(message_ids=[m.id for m in messages])
    # then: two answered within 15 s; the third handed back untouched, for its own task
    assert sorted(handled.replies) == [messages[0].id, messages[1].id]
    assert handled.busy == [messages[2].id]
    messages[2].refresh_from_db()
    assert messages[2].status == Status.RECEIVED

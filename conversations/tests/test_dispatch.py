"""
The inbound dispatcher: stored inbound SMS are queued many to a task, each once, and
given back when the broker cannot take them. Tasks run in process here, so a queued
batch is handled at once and its replies can be read back.
"""

import pytest
from django.utils import timezone

from conftest import broker_down
from conversations.dispatch import inbound_dispatch
from conversations.tasks import handle_inbound_batch
from conversations.tests.factories import ASK_NAME, BALANCE, registered, service_shortcode
from delivery.models import Message
from delivery.statuses import Direction, Status
from smsgate.celery import app

pytestmark = pytest.mark.django_db


@pytest.fixture
def shortcode(db):
    return service_shortcode()


def stored(phone: str, text: str, **fields) -> Message:
    """An inbound row as the webhook leaves it: `received`, its handling not yet queued."""
    row = {"direction": Direction.INBOUND, "status": Status.RECEIVED, "shortcode": "57675", "provider": "generic"}
    return Message.objects.create(**(row | fields), phone=phone, body=text)


def replies_to(messages: list[Message]) -> list[str]:
    return [Message.objects.get(direction=Direction.OUTBOUND, in_reply_to=message).body for message in messages]


@pytest.mark.parametrize(("count", "batch_size"), [(1, 20), (5, 2), (7, 7), (12, 5)])
def test_every_stored_message_is_queued_once_and_answered(shortcode, count, batch_size):
    # given: messages stored by the webhook, none queued yet
    messages = [stored(f"+91987650{n:04d}", "2") for n in range(count)]
    # when: one dispatch round
    result = inbound_dispatch(batch_size=batch_size)
    # then: all queued, marked, and answered once each
    assert result == {"queued": count, "given_back": 0}
    assert not Message.objects.filter(direction=Direction.INBOUND, queued_at__isnull=True).exists()
    assert replies_to(messages) == [BALANCE] * count
    # and: a second round finds nothing to queue
    assert inbound_dispatch() == {"queued": 0, "given_back": 0}


def test_one_phone_in_one_batch_keeps_its_order(shortcode):
    # given: a phone's registration typed in two SMS
    register, name = stored("+919876543210", "1"), stored("+919876543210", "Asha")
    # when
    inbound_dispatch()
    # then: the name answers the question the first one asked
    assert replies_to([register, name]) == [ASK_NAME, registered("Asha")]


@pytest.mark.parametrize(
    "fields",
    [
        {"queued_at": timezone.now()},  # claimed by another dispatcher
        {"status": Status.HANDLED},
    ],
    ids=["claimed-elsewhere", "handled"],
)
def test_a_round_leaves_claimed_and_handled_messages_alone(shortcode, fields):
    stored("+919876543210", "2", **fields)
    assert inbound_dispatch() == {"queued": 0, "given_back": 0}
    assert not Message.objects.filter(direction=Direction.OUTBOUND).exists()


def test_a_round_limit_leaves_the_rest_for_the_next_round(shortcode):
    messages = [stored(f"+91987650{n:04d}", "2") for n in range(5)]
    assert inbound_dispatch(limit=3) == {"queued": 3, "given_back": 0}
    assert inbound_dispatch(limit=3) == {"queued": 2, "given_back": 0}
    assert replies_to(messages) == [BALANCE] * 5


@pytest.fixture
def through_a_broker():
    """Tasks published to a broker instead of run in process (the broker itself is down: see broker_down)."""
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = True


def test_the_broker_down_gives_every_claimed_message_back(shortcode, through_a_broker):
    messages = [stored(f"+91987650{n:04d}", "2") for n in range(4)]
    # when: a round while the broker cannot be reached
    with broker_down():
        result = inbound_dispatch(batch_size=2)
    # then: nothing is lost, nothing answered, every row waits unqueued for the next round
    assert result == {"queued": 0, "given_back": 4}
    assert Message.objects.filter(id__in=[m.id for m in messages], queued_at__isnull=True).count() == 4
    assert not Message.objects.filter(direction=Direction.OUTBOUND).exists()


def test_a_batch_handled_twice_answers_once(shortcode):
    # given: a batch the broker delivers again after its worker died at the end of it
    messages = [stored(f"+91987650{n:04d}", "2") for n in range(3)]
    ids = [m.id for m in messages]
    assert handle_inbound_batch.apply(args=(ids,)).get() == 3
    # when: it runs again
    assert handle_inbound_batch.apply(args=(ids,)).get() == 0
    # then: one reply each
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 3


def test_a_failing_message_does_not_stop_its_batch(shortcode, monkeypatch):
    from conversations import handling

    messages = [stored(f"+91987650{n:04d}", "2") for n in range(3)]
    later_of_failing_phone = stored(messages[1].phone, "2")
    real_step = handling.conversation_step

    def step(*, message_id, **kwargs):
        if message_id == messages[1].id:
            raise ValueError("a bug past the handler's own guard")
        return real_step(message_id=message_id, **kwargs)

    monkeypatch.setattr(handling, "conversation_step", step)
    # when
    replies = handle_inbound_batch.apply(args=([m.id for m in messages] + [later_of_failing_phone.id],)).get()
    # then: the other phones are answered; the failing one stays `received` for the inbound
    # sweep, and so does its phone's later message, which must not be answered before it
    assert replies == 2
    for message in (messages[1], later_of_failing_phone):
        message.refresh_from_db()
        assert message.status == Status.RECEIVED

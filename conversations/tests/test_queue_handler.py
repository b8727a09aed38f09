"""
The `queue` handler: a command whose work a Celery task does later, replying through the
send service; only tasks meant for it can be named.
"""

import itertools

import pytest
from celery import shared_task
from django.core.exceptions import ValidationError

from commands.models import Command
from commands.services import command_update
from commands.tests.factories import CommandFactory, ShortcodeFactory
from conftest import FakeResponse, broker_down, wait_until
from conversations.handling import inbound_handle, reply_later_send
from conversations.receiving import message_receive
from delivery.models import Message
from delivery.providers.base import InboundSMS
from delivery.statuses import Direction, Status

PHONE = "+919876543210"
ACK = "We are looking that up. You will get an SMS shortly."
UNREGISTERED = "You are not registered yet. Send 1 to register."
_message_ids = itertools.count(1)
payloads: list[dict] = []


@shared_task(name="queued.tests.echo")
def echo(payload: dict) -> None:
    """A task a `queue` command may start (its name says so): notes what it got and replies."""
    payloads.append(payload)
    reply_later_send(message_id=payload["message_id"], text=f"Done: {payload['args'] or 'nothing'}")


@shared_task(name="conversations.tests.allowlisted_echo")
def allowlisted_echo(payload: dict) -> None:
    """The same, under a name only settings.QUEUE_HANDLER_TASKS can open."""
    echo(payload)


@pytest.fixture(autouse=True)
def _payloads():
    payloads.clear()
    yield
    payloads.clear()


def queue_command(task: str, **config) -> Command:
    return CommandFactory(
        shortcode=ShortcodeFactory(number="57675"),
        code="7",
        name="Statement",
        handler_key="queue",
        config={"task": task, **config},
        aliases=["STMT"],
    )


def sms(text: str) -> Message:
    inbound, _ = message_receive(
        provider="generic",
        sms=InboundSMS(sender=PHONE, recipient="57675", body=text, provider_message_id=f"q-{next(_message_ids)}"),
    )
    inbound_handle(message_id=inbound.id)
    inbound.refresh_from_db()
    return inbound


def replies(inbound: Message) -> list[str]:
    return list(Message.objects.filter(in_reply_to=inbound).order_by("id").values_list("body", flat=True))


# Configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config,allowed",
    [
        ({"task": "queued.tests.echo"}, True),
        ({"task": "queued.tests.echo", "ack": ACK}, True),
        ({"task": "conversations.tests.allowlisted_echo"}, True),
        ({"task": "delivery.tasks.deliver"}, False),
        ({"task": "conversations.tasks.inbound_sweep"}, False),
        ({"task": "queued."}, False),
        ({"task": ""}, False),
        ({"task": "queued." + "x" * 300}, False),
        ({}, False),
        ({"task": "queued.tests.echo", "ack": ["not", "text"]}, False),
        ({"task": "queued.tests.echo", "fallback": 3}, False),
        (["not", "an", "object"], False),
    ],
)
def test_only_tasks_meant_for_commands_can_be_named(db, settings, config, allowed):
    # given: one task allowlisted by name
    settings.QUEUE_HANDLER_TASKS = ["conversations.tests.allowlisted_echo"]
    command = queue_command("queued.tests.echo")
    command.config = config
    # when / then
    if allowed:
        command_update(command=command)
    else:
        with pytest.raises(ValidationError) as raised:
            command_update(command=command)
        assert "config" in raised.value.message_dict


# In-process (the embedded default) -------------------------------------------------------


def test_the_task_gets_the_sms_and_replies_after_the_acknowledgement(db):
    # given
    queue_command("queued.tests.echo", ack=ACK)
    # when
    inbound = sms("STMT march")
    # then: the task got the SMS, and the ack went first
    assert payloads == [{"phone": PHONE, "shortcode": "57675", "code": "7", "args": "march", "message_id": inbound.id}]
    assert replies(inbound) == [ACK, "Done: march"]
    assert inbound.status == Status.HANDLED


def test_without_an_acknowledgement_only_the_tasks_reply_is_sent(db):
    queue_command("queued.tests.echo")
    inbound = sms("7")
    assert replies(inbound) == ["Done: nothing"]
    assert inbound.status == Status.HANDLED


def test_an_allowlisted_task_runs(db, settings):
    settings.QUEUE_HANDLER_TASKS = ["conversations.tests.allowlisted_echo"]
    queue_command("conversations.tests.allowlisted_echo")
    assert replies(sms("7 april")) == ["Done: april"]


def test_a_saved_row_naming_another_task_starts_nothing(db, caplog):
    # given: a row written around validation (an old row, a raw update)
    command = queue_command("queued.tests.echo")
    Command.objects.filter(pk=command.pk).update(config={"task": "delivery.tasks.deliver", "fallback": "Not now."})
    # when
    inbound = sms("7")
    # then
    assert replies(inbound) == ["Not now."]
    assert payloads == []
    assert "not a task commands may start" in caplog.text


def test_the_demo_task_replies_with_the_balance(db):
    queue_command("queued.demo.balance_reply", ack=ACK)
    assert replies(sms("7")) == [ACK, UNREGISTERED]


def test_a_later_reply_to_something_that_is_not_an_inbound_sms_is_not_sent(db, caplog):
    assert reply_later_send(message_id=987654, text="Hello") is None
    assert "later reply to message 987654 not sent" in caplog.text


def test_a_broker_outage_leaves_the_sms_for_the_sweep_and_sends_nothing(db, broker_in_use, caplog):
    # given
    queue_command("queued.tests.echo", ack=ACK)
    # when: the broker cannot take the work
    with broker_down():
        inbound = sms("7 may")
    # then: no ack either, and the SMS is still waiting
    assert inbound.status == Status.RECEIVED
    assert replies(inbound) == []
    assert "left for the inbound sweep" in caplog.text
    # when: it is handled again (the sweep's task), tasks running here
    from smsgate.celery import app

    app.conf.task_always_eager = True
    inbound_handle(message_id=inbound.id)
    # then
    inbound.refresh_from_db()
    assert inbound.status == Status.HANDLED
    assert replies(inbound) == [ACK, "Done: may"]


# With the real worker ------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_named_task_runs_in_the_worker_and_its_reply_is_sent(celery_worker, provider_server):
    # given: the demo's queued balance task, replies through a local gateway
    shortcode = ShortcodeFactory(
        number="57675",
        provider="generic",
        provider_config={"outbound_url": f"{provider_server.url}/send", "timeout": 1},
    )
    CommandFactory(shortcode=shortcode, code="7", handler_key="queue", config={"task": "queued.demo.balance_reply"})
    provider_server.script = [FakeResponse(200, {"id": "gw-1"})]
    # when: the SMS arrives and is handled by the worker
    inbound, _ = message_receive(
        provider="generic",
        sms=InboundSMS(sender=PHONE, recipient="57675", body="7", provider_message_id="q-worker-1"),
    )
    # then: the worker's task replied, and the reply reached the gateway
    wait_until(
        lambda: Message.objects.filter(in_reply_to=inbound, status=Status.SENT).exists(), what="the later reply sent"
    )
    (sent,) = provider_server.wait_for(1)
    assert sent.json()["message"] == UNREGISTERED
    assert sent.json()["to"] == PHONE
    inbound.refresh_from_db()
    assert inbound.status == Status.HANDLED
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 1


def test_without_a_broker_a_task_this_process_does_not_know_is_not_started(db, caplog):
    queue_command("queued.tests.not_defined_anywhere", ack=ACK, fallback="Statements are resting.")
    inbound = sms("7")
    assert replies(inbound) == ["Statements are resting."]
    assert inbound.status == Status.HANDLED
    assert "task queued.tests.not_defined_anywhere is not registered" in caplog.text

"""
Which queue each piece of work waits on, and what the queues promise on a real broker.

Every queue is consumed by workers of its own in production (docker-compose.yml): an
inbound SMS waits on `inbound`, its reply's delivery on `replies`, a batch on `bulk`,
every countdown retry on `retries`, and the rest (periodic jobs, sweeps, callbacks) on
Celery's default queue. The table below is that specification, read off a real in-process
broker (kombu's memory transport); the tests marked `services` run on the broker
CELERY_BROKER_URL names, Redis or RabbitMQ.
"""

import os
import re
import signal
import socket
import uuid
from dataclasses import replace
from datetime import timedelta

import kombu.pools
import pytest
import yaml
from celery.exceptions import Retry
from django.utils import timezone

from bulk.services import RecipientInput, batch_create
from commands.tests.factories import CommandFactory
from conftest import ROOT, FakeResponse, ProviderServer, generic_inbound, processes_stop, wait_until, worker_start
from conversations.dispatch import inbound_dispatch
from conversations.receiving import HANDLE_INBOUND_BATCH_TASK, HANDLE_INBOUND_TASK, message_receive
from conversations.sweeps import inbound_sweep
from conversations.tasks import handle_inbound
from conversations.tests.factories import BALANCE, PHONE, service_shortcode
from delivery.models import Message
from delivery.outbound import DELIVER_TASK, message_send
from delivery.providers.base import InboundSMS
from delivery.queueing import (
    BULK_QUEUE,
    DEFAULT_QUEUE,
    INBOUND_QUEUE,
    REPLIES_QUEUE,
    RETRIES_QUEUE,
    TASK_QUEUES,
    broker_backlog,
    publish,
)
from delivery.send_options import send_options_for
from delivery.statuses import Direction, Status
from delivery.sweeps import outbox_sweep
from delivery.tasks import deliver
from delivery.throttle import lock_acquire, lock_release


@pytest.fixture
def broker_queues(broker_in_use):
    """
    Tasks go to a real broker in this process (kombu's memory transport); returns
    `queued()`, which takes every waiting message off the broker: {queue: [task names]}.
    """
    from smsgate.celery import app

    def reset_pools():
        kombu.pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    def queued() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            for name in TASK_QUEUES:
                while (message := channel.basic_get(queue=name, no_ack=True)) is not None:
                    found.setdefault(name, []).append(message.headers["task"])
        return found

    saved = app.conf.broker_url, app.conf.broker_write_url
    app.conf.broker_url = app.conf.broker_write_url = "memory://"
    reset_pools()
    queued()  # another test's leftovers are not this one's
    try:
        yield queued
    finally:
        app.conf.broker_url, app.conf.broker_write_url = saved
        reset_pools()


def worker_run(task, *args):
    """Run `task` as a worker runs a message it took from the broker: a retry is published, not run here."""
    task.push_request(id=str(uuid.uuid4()), args=list(args), kwargs={}, retries=0, called_directly=False)
    try:
        return task.run(*args)
    except Retry:
        return "retried"
    finally:
        task.pop_request()


def stored_inbound(text: str = "2", phone: str = PHONE) -> Message:
    """An inbound SMS to 57675 stored as the webhook stores it (its handling not queued)."""
    message, _ = message_receive(
        provider="generic",
        sms=InboundSMS(sender=phone, recipient="57675", body=text, provider_message_id=f"q-{uuid.uuid4()}"),
    )
    return message


# The work, as its callers queue it ---------------------------------------------------


def the_inbound_dispatcher_finding_stored_sms(ctx):
    with ctx.on_commit(execute=True):
        stored_inbound(phone="+919876543210")
        stored_inbound(phone="+919876543211")
    assert inbound_dispatch(batch_size=1)["queued"] == 2


def a_reply(ctx):
    shortcode = service_shortcode()
    with ctx.on_commit(execute=True):
        message_send(shortcode="57675", phone=PHONE, body="Hi", provider="console", options=send_options_for(shortcode))


def a_batch_message(ctx):
    options = replace(send_options_for(service_shortcode()), bulk=True)
    with ctx.on_commit(execute=True):
        message_send(shortcode="57675", phone=PHONE, body="Offer", provider="console", options=options)


def a_new_batch(ctx):
    with ctx.on_commit(execute=True):
        batch_create(shortcode=service_shortcode(), text="Offer", recipients=[RecipientInput(to=PHONE)])


def a_reply_the_gateway_answers_503(ctx):
    ctx.gateway.script = [FakeResponse(503, "busy", headers={"Retry-After": "30"})]
    shortcode = service_shortcode(provider="generic", provider_config={"outbound_url": f"{ctx.gateway.url}/send"})
    message = message_send(
        shortcode="57675", phone=PHONE, body="Hi", provider="generic", options=send_options_for(shortcode)
    )
    assert worker_run(deliver, message.id) == "retried"


def an_inbound_sms_of_a_busy_phone(ctx):
    service_shortcode()
    message = stored_inbound()
    assert lock_acquire(f"phone:57675:{PHONE}", timeout=30)
    try:
        assert worker_run(handle_inbound, message.id) == "retried"
    finally:
        lock_release(f"phone:57675:{PHONE}")


def the_outbox_sweep_finding_a_reply_and_a_batch_message(ctx):
    shortcode = service_shortcode()
    options = send_options_for(shortcode)
    message_send(shortcode="57675", phone=PHONE, body="Hi", provider="console", options=options)
    message_send(shortcode="57675", phone=PHONE, body="Offer", provider="console", options=replace(options, bulk=True))
    assert outbox_sweep(now=timezone.now() + timedelta(minutes=5))["requeued"] == 2


def the_inbound_sweep_finding_an_unhandled_sms(ctx):
    stored_inbound()
    assert inbound_sweep(now=timezone.now() + timedelta(minutes=5)) == {"requeued": 1}


def a_periodic_job(ctx):
    publish("delivery.tasks.outbox_sweep")


QUEUE_OF_WORK = [
    (the_inbound_dispatcher_finding_stored_sms, {INBOUND_QUEUE: [HANDLE_INBOUND_BATCH_TASK] * 2}),
    (a_reply, {REPLIES_QUEUE: [DELIVER_TASK]}),
    (a_batch_message, {BULK_QUEUE: [DELIVER_TASK]}),
    (a_new_batch, {BULK_QUEUE: ["bulk.tasks.batch_dispatch"]}),
    (a_reply_the_gateway_answers_503, {RETRIES_QUEUE: [DELIVER_TASK]}),
    (an_inbound_sms_of_a_busy_phone, {RETRIES_QUEUE: [HANDLE_INBOUND_TASK]}),
    (the_outbox_sweep_finding_a_reply_and_a_batch_message, {REPLIES_QUEUE: [DELIVER_TASK], BULK_QUEUE: [DELIVER_TASK]}),
    (the_inbound_sweep_finding_an_unhandled_sms, {INBOUND_QUEUE: [HANDLE_INBOUND_TASK]}),
    (a_periodic_job, {DEFAULT_QUEUE: ["delivery.tasks.outbox_sweep"]}),
]


class Context:
    def __init__(self, on_commit, gateway):
        self.on_commit, self.gateway = on_commit, gateway


@pytest.mark.django_db
@pytest.mark.parametrize("work,queues", QUEUE_OF_WORK, ids=[work.__name__ for work, _ in QUEUE_OF_WORK])
def test_each_kind_of_work_waits_on_its_own_queue(
    work, queues, broker_queues, django_capture_on_commit_callbacks, provider_server
):
    work(Context(django_capture_on_commit_callbacks, provider_server))

    assert broker_queues() == queues


def test_the_sweeps_count_the_backlog_of_every_queue(broker_queues):
    for name in TASK_QUEUES:
        publish("delivery.tasks.outbox_sweep", queue=name)

    assert broker_backlog() == len(TASK_QUEUES)


def test_a_worker_started_without_a_queue_list_consumes_every_queue():
    from smsgate.celery import app

    assert sorted(queue.name for queue in app.amqp.queues.consume_from.values()) == sorted(TASK_QUEUES)
    assert all(queue.durable for queue in app.amqp.queues.values())


# On the real broker --------------------------------------------------------------------


@pytest.fixture
def replies_worker(celery_worker, tmp_path):
    """
    A second worker, for inbound SMS and replies only, as production runs one
    (docker-compose.yml: worker and worker-replies); the session's worker consumes every queue.
    """
    from smsgate.celery import app

    name = f"replies-{os.getpid()}@%h"
    log_path = tmp_path / "replies-worker.log"
    process = worker_start(name, log_path, "-c", "1", "-Q", f"{INBOUND_QUEUE},{REPLIES_QUEUE}")
    try:
        wait_until(
            lambda: (
                process.poll() is not None
                or app.control.ping(destination=[name.replace("%h", socket.gethostname())], timeout=0.5)
            ),
            timeout=60,
            what="the replies worker",
        )
        assert process.poll() is None, log_path.read_text()
        yield process
    finally:
        processes_stop(process)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_bulk_backlog_does_not_delay_a_reply(replies_worker, provider_server, client):
    # given: forty batch messages queued, each taking the gateway a quarter of a second,
    # which keep the session's worker busy
    shortcode = service_shortcode(
        provider="generic",
        provider_config={"outbound_url": f"{provider_server.url}/send"},
        max_mps=1000,
        inbound_limit_per_minute=1000,
    )
    provider_server.respond = lambda request: FakeResponse(
        200, {"id": f"gw-{uuid.uuid4()}"}, delay=0 if request.json()["to"] == PHONE else 0.25
    )
    options = replace(send_options_for(shortcode), bulk=True)
    batch = [
        message_send(shortcode="57675", phone=f"+9198200{n:05d}", body="Offer", provider="generic", options=options)
        for n in range(40)
    ]
    wait_until(lambda: len(provider_server.requests) >= 2, what="the bulk backlog under way")

    # when: an SMS arrives
    assert generic_inbound(client, PHONE, "2", "backlog-reply").status_code == 200

    # then: its reply is sent while most of the batch still waits
    wait_until(lambda: Message.objects.filter(phone=PHONE, status=Status.SENT).exists(), what="the reply")
    still_queued = Message.objects.filter(id__in=[m.id for m in batch], status=Status.QUEUED).count()
    assert Message.objects.get(phone=PHONE, direction=Direction.OUTBOUND).body == BALANCE
    assert still_queued >= 20
    wait_until(
        lambda: Message.objects.filter(id__in=[m.id for m in batch], status=Status.SENT).count() == 40,
        what="the whole batch",
    )


@pytest.fixture
def offers_endpoint():
    """Another system's endpoint answering code 4: it holds the first call, then answers at once."""
    server = ProviderServer().start()
    server.script = [FakeResponse(200, {"reply": "Offer A"}, delay=30), FakeResponse(200, {"reply": "Offer A"})]
    yield server
    server.stop()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_task_leaves_the_sms_to_be_handled_again_with_one_reply(
    celery_worker, provider_server, offers_endpoint, client
):
    from smsgate.celery import app

    # given: code 4 answered by the endpoint, replies through a local gateway
    shortcode = service_shortcode(
        provider="generic",
        provider_config={"outbound_url": f"{provider_server.url}/send"},
        inbound_limit_per_minute=1000,
    )
    CommandFactory(
        shortcode=shortcode,
        code="4",
        name="Offers",
        handler_key="http",
        config={"endpoint": f"{offers_endpoint.url}/offers", "secret_env": "HANDLER_SECRET_TESTS", "retries": 0},
    )
    assert generic_inbound(client, PHONE, "4", "killed-1").status_code == 200

    # when: the worker process handling it is killed while the endpoint holds the call
    offers_endpoint.wait_for(1)
    active = [task for tasks in (app.control.inspect(timeout=2, limit=1).active() or {}).values() for task in tasks]
    (handling,) = [task for task in active if task["name"].startswith(HANDLE_INBOUND_TASK)]
    os.kill(handling["worker_pid"], signal.SIGKILL)
    # The dead process's phone lock would lapse after PHONE_LOCK_SECONDS; it is dead, so
    # nothing else holds the phone.
    lock_release(f"phone:57675:{PHONE}")

    # then: the broker delivers the message again, and the SMS gets exactly one reply
    wait_until(lambda: Message.objects.filter(phone=PHONE, status=Status.SENT).exists(), timeout=60, what="reply")
    provider_server.wait_for(1)
    assert [request.json()["message"] for request in provider_server.requests] == ["Offer A"]
    assert len(offers_endpoint.requests) == 2
    inbound_sms = Message.objects.get(phone=PHONE, direction=Direction.INBOUND)
    assert (inbound_sms.status, Message.objects.filter(in_reply_to=inbound_sms).count()) == (Status.HANDLED, 1)


# docker compose ------------------------------------------------------------------------


def compose_workers() -> dict[str, dict]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: service for name, service in services.items() if name.startswith("worker")}


def test_compose_runs_a_worker_for_every_queue():
    consumed = {}
    for name, service in compose_workers().items():
        queues = re.search(r"-Q (\S+)", service["command"]).group(1).split(",")
        consumed.update(dict.fromkeys(queues, name))

    assert consumed == {
        INBOUND_QUEUE: "worker",
        DEFAULT_QUEUE: "worker",
        REPLIES_QUEUE: "worker-replies",
        BULK_QUEUE: "worker-bulk",
        RETRIES_QUEUE: "worker-retries",
    }


@pytest.mark.parametrize("name", sorted(compose_workers()))
def test_compose_can_scale_each_worker(name):
    # `docker compose up --scale <name>=N` needs containers without a fixed name or host port.
    service = compose_workers()[name]
    assert "container_name" not in service
    assert "ports" not in service

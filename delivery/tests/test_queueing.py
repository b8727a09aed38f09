"""
Queueing work by task name: it runs in-process on the embedded default, a broker outage
leaves the row for the sweep, and every name services queue is a registered task.
"""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import ROOT, broker_down
from conversations.receiving import HANDLE_INBOUND_TASK
from delivery.models import Message
from delivery.outbound import DELIVER_TASK, message_send
from delivery.queueing import publish
from delivery.statuses import Status
from delivery.sweeps import outbox_sweep
from delivery.tests.factories import OutboundMessageFactory


@pytest.mark.django_db
def test_a_task_queued_by_name_runs_in_process_when_there_is_no_broker():
    # given
    message = OutboundMessageFactory(provider="console")

    # when
    queued = publish(DELIVER_TASK, message.id)

    # then
    assert queued is True
    message.refresh_from_db()
    assert message.status == Status.SENT


@pytest.mark.django_db
def test_a_broker_outage_leaves_the_message_for_the_sweep(broker_in_use, django_capture_on_commit_callbacks, caplog):
    # when: a message is stored while the broker cannot be reached
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        message = message_send(shortcode="57675", phone="+919876543210", body="Hello", provider="console")

    # then: stored, still queued, and the failure is logged rather than raised
    message.refresh_from_db()
    assert message.status == Status.QUEUED
    assert f"could not queue {DELIVER_TASK}" in caplog.text


@pytest.mark.django_db
def test_the_sweep_sends_what_the_outage_left(broker_in_use):
    with broker_down():
        message = message_send(shortcode="57675", phone="+919876543210", body="Hello", provider="console")
        assert publish(DELIVER_TASK, message.id) is False

    # when: tasks run again (here in-process) and the sweep comes by
    from smsgate.celery import app

    app.conf.task_always_eager = True
    result = outbox_sweep(now=timezone.now() + timedelta(minutes=5))

    # then
    assert result == {"requeued": 1, "reset": 0}
    assert Message.objects.get(id=message.id).status == Status.SENT


def test_a_fresh_process_registers_every_task_queued_or_scheduled_by_name():
    # Names are only strings until the task modules are imported: a web process that never
    # imported them would send "eager" work to a broker that is not there.
    script = (
        "import json, django; django.setup();"
        "from celery import current_app; from django.conf import settings;"
        "names = [job['task'] for job in settings.CELERY_BEAT_SCHEDULE.values()] + json.loads(input());"
        "print(json.dumps(sorted(set(names) - set(current_app.tasks))))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "smsgate.settings"}

    done = subprocess.run(  # noqa: S603  (our own interpreter and script)
        [sys.executable, "-c", script],
        input=json.dumps([DELIVER_TASK, HANDLE_INBOUND_TASK]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=True,
    )

    assert json.loads(done.stdout.strip().splitlines()[-1]) == []

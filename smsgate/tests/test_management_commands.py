import threading

import pytest
from django.core.management import call_command

from conftest import wait_until
from conversations.tests.factories import ASK_NAME, BALANCE, registered, service_shortcode
from delivery.models import Message
from delivery.statuses import PENDING_STATUSES, Direction
from delivery.throttle import lock_acquire, lock_release
from templates.models import Template


@pytest.mark.django_db
def test_simulate_sms_prints_the_replies(capsys):
    # given: a DLT-bound shortcode on the console provider
    service_shortcode(dlt=True)
    # when
    call_command("simulate_sms", "1", "Asha", "2", sender="+919876543210", recipient="57675")
    # then: each reply, and the template it went out with
    out = capsys.readouterr().out
    assert f"→ {ASK_NAME}" in out
    assert f"→ {registered('Asha')}" in out
    assert f"→ {BALANCE}" in out
    assert f"[sent via console, DLT template {Template.objects.get(content=BALANCE).dlt_template_id}]" in out


@pytest.mark.django_db
def test_simulate_sms_waits_for_a_phone_held_elsewhere(capsys):
    # given: a worker holds the phone (the same cache), and lets it go a moment later
    service_shortcode()
    lock = "phone:57675:+919876543210"
    assert lock_acquire(lock, timeout=30)
    threading.Timer(0.3, lock_release, args=[lock]).start()
    # when
    call_command("simulate_sms", "2", sender="+919876543210", recipient="57675")
    # then: no PhoneBusy, and the reply is printed
    out = capsys.readouterr().out
    assert f"→ {BALANCE}" in out
    assert "[sent via console" in out


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_simulate_sms_beside_a_celery_worker_prints_the_replies(celery_worker, capsys):
    # given: a worker that takes each message from the broker, racing the command for the phone
    service_shortcode()
    phones = [f"+91987654321{n}" for n in range(5)]
    # when
    for phone in phones:
        call_command("simulate_sms", "2", sender=phone, recipient="57675")
    # then: whichever handled it, every message has its one reply, printed
    out = capsys.readouterr().out
    assert out.count(f"→ {BALANCE}") == len(phones)
    assert "(no reply)" not in out
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == len(phones)
    # and: the worker is done with them, so nothing it still writes races the clean-up
    wait_until(lambda: not Message.objects.filter(status__in=PENDING_STATUSES).exists(), what="the worker's sends")


@pytest.mark.django_db
def test_simulate_sms_refuses_an_invalid_number():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a valid phone number"):
        call_command("simulate_sms", "1", sender="12", recipient="57675")

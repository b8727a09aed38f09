import json
import threading

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import RequestFactory

from commands.models import Alias, Command, Shortcode
from delivery.models import Message
from delivery.throttle import lock_acquire, lock_release
from smsgate import demo
from templates.services import template_resolve


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    call_command("seed_demo", verbosity=0)
    call_command("seed_demo", verbosity=0)
    shortcode = Shortcode.objects.get(number="57675")
    assert shortcode.provider == "console"
    assert sorted(Command.objects.filter(shortcode=shortcode).values_list("code", "handler_key")) == [
        ("1", "register"),
        ("2", "balance"),
        ("3", "support"),
        ("4", "http"),
    ]
    assert Alias.objects.filter(keyword="BAL").count() == 1
    staff, agents = Group.objects.get(name="Business staff"), Group.objects.get(name="Support agents")
    assert staff.permissions.filter(codename="change_command").exists()
    assert not agents.permissions.exclude(codename__startswith="view_").exists()
    assert agents.permissions.filter(codename="view_message").exists()


@pytest.mark.django_db
def test_simulate_sms_prints_the_replies(capsys):
    call_command("seed_demo", verbosity=0)
    call_command("simulate_sms", "1", "Asha", "2", sender="+919876543210", recipient="57675")
    out = capsys.readouterr().out
    assert "→ Welcome! Please reply with your name." in out
    assert "→ Thank you Asha, you are registered." in out
    assert "→ Hi Asha, your balance is Rs 0.00." in out
    assert "[sent via console, DLT template 1107170000000000005]" not in out  # 2 was sent registered
    assert "[sent via console, DLT template 1107170000000000004]" in out  # the balance template


@pytest.mark.django_db
def test_simulate_sms_waits_for_a_phone_held_elsewhere(capsys):
    # given: a worker holds the phone (the same cache), and lets it go a moment later
    call_command("seed_demo", verbosity=0)
    lock = "phone:57675:+919876543210"
    assert lock_acquire(lock, timeout=30)
    threading.Timer(0.3, lock_release, args=[lock]).start()
    # when
    call_command("simulate_sms", "2", sender="+919876543210", recipient="57675")
    # then: no PhoneBusy, and the reply is printed
    out = capsys.readouterr().out
    assert "→ You are not registered yet. Send 1 to register." in out
    assert "[sent via console" in out


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_simulate_sms_beside_a_celery_worker_prints_the_replies(celery_worker, capsys):
    # given: a worker that takes each message from the broker, racing the command for the phone
    call_command("seed_demo", verbosity=0)
    phones = [f"+91987654321{n}" for n in range(5)]
    # when
    for phone in phones:
        call_command("simulate_sms", "2", sender=phone, recipient="57675")
    # then: whichever handled it, every message has its one reply, printed
    out = capsys.readouterr().out
    assert out.count("→ You are not registered yet. Send 1 to register.") == len(phones)
    assert "(no reply)" not in out
    assert Message.objects.filter(direction="out").count() == len(phones)


@pytest.mark.django_db
def test_simulate_sms_refuses_an_invalid_number():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a valid phone number"):
        call_command("simulate_sms", "1", sender="12", recipient="57675")


@pytest.mark.django_db
@pytest.mark.parametrize("phone", ["+919876543210", "+919812345678", "+14155550100"])
def test_demo_offers_answer_with_a_text_its_dlt_template_accepts(phone):
    # given
    call_command("seed_demo", verbosity=0)
    request = RequestFactory().post("/demo/offers/", {"phone": phone}, content_type="application/json")
    # when
    reply = json.loads(demo.offers(request).content)["reply"]
    # then
    assert template_resolve(header="SMSGTE", text=reply).matched, reply

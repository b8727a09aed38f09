"""`seed_demo`: the demo's data, idempotent, and the offers endpoint its code 4 calls."""

import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import RequestFactory

from commands.models import Alias, Command, Shortcode
from demo.views import offers
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
    assert {"view_account"} <= set(agents.permissions.values_list("codename", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize("phone", ["+919876543210", "+919812345678", "+14155550100"])
def test_demo_offers_answer_with_a_text_its_dlt_template_accepts(phone):
    # given
    call_command("seed_demo", verbosity=0)
    request = RequestFactory().post("/demo/offers/", {"phone": phone}, content_type="application/json")
    # when
    reply = json.loads(offers(request).content)["reply"]
    # then
    assert template_resolve(header="SMSGTE", text=reply).matched, reply

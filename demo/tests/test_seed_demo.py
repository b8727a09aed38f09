"""`seed_demo`: the demo's data, idempotent, and the offers endpoint its code 4 calls."""

import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import RequestFactory

from commands.models import Alias, Command, Shortcode
from delivery.signing import request_sign
from demo.views import OFFERS_SECRET_ENV, offers
from templates.services import template_resolve


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    call_command("seed_demo", verbosity=0)
    call_command("seed_demo", verbosity=0)
    shortcode = Shortcode.objects.get(number="57675")
    assert shortcode.provider == "console"
    assert sorted(Command.objects.filter(shortcode=shortcode).values_list("code", "handler_key")) == [
        ("1", "flow"),
        ("2", "balance"),
        ("3", "flow"),
        ("4", "http"),
    ]
    assert Alias.objects.filter(keyword="BAL").count() == 1
    staff, agents = Group.objects.get(name="Business staff"), Group.objects.get(name="Support agents")
    assert staff.permissions.filter(codename="change_command").exists()
    # Agents read, re-send failed messages and work tickets; nothing else.
    assert set(agents.permissions.exclude(codename__startswith="view_").values_list("codename", flat=True)) == {
        "requeue_message",
        "change_supportticket",
    }
    assert agents.permissions.filter(codename="view_message").exists()
    assert {"view_account"} <= set(agents.permissions.values_list("codename", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize("phone", ["+919876543210", "+919812345678", "+14155550100"])
def test_demo_offers_answer_with_a_text_its_dlt_template_accepts(phone, monkeypatch):
    # given
    monkeypatch.setenv(OFFERS_SECRET_ENV, "demo-offers-secret")
    call_command("seed_demo", verbosity=0)
    body = json.dumps({"phone": phone}).encode()
    headers = {
        f"HTTP_{name.upper().replace('-', '_')}": value
        for name, value in request_sign(secret="demo-offers-secret", body=body).items()
    }
    request = RequestFactory().post("/demo/offers/", body, content_type="application/json", **headers)
    # when
    reply = json.loads(offers(request).content)["reply"]
    # then
    assert template_resolve(header="SMSGTE", text=reply).matched, reply


@pytest.mark.parametrize("signed_with", [None, "another-secret"])
def test_demo_offers_refuse_calls_not_signed_with_the_demo_secret(signed_with, monkeypatch):
    # given
    monkeypatch.setenv(OFFERS_SECRET_ENV, "demo-offers-secret")
    body = b'{"phone": "+919876543210"}'
    headers = {}
    if signed_with:
        signed = request_sign(secret=signed_with, body=body)
        headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in signed.items()}
    request = RequestFactory().post("/demo/offers/", body, content_type="application/json", **headers)
    # when
    response = offers(request)
    # then
    assert response.status_code == 403

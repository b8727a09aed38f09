"""The demo's services as a subscriber of shortcode 57675 lives them, on the data `seed_demo` writes."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from freezegun import freeze_time

from conversations.flows import flow_problems
from conversations.models import Contact, Flow, SupportTicket
from conversations.sessions import session_get
from conversations.tests.test_flows import sms
from delivery.models import Message
from delivery.statuses import Direction
from demo.models import Account

PHONE = "+919876543210"
BALANCE_TEMPLATE_ID = "1107170000000000004"


@pytest.fixture
def demo(db):
    call_command("seed_demo", verbosity=0)


def test_register_asks_a_name_then_stores_the_contact(demo):
    # when
    prompt = sms("1")
    # then
    assert prompt == "Welcome! Please reply with your name."
    assert session_get(shortcode="57675", phone=PHONE).step == "name"
    # when
    done = sms("Asha")
    # then
    assert done == "Thank you Asha, you are registered."
    contact = Contact.objects.get(phone=PHONE)
    assert contact.name == "Asha"
    assert contact.registered_at is not None
    assert session_get(shortcode="57675", phone=PHONE) is None
    assert sms("2") == "Hi Asha, your balance is Rs 0.00."


def test_register_in_one_message(demo):
    assert sms("REG  Ravi   Kumar") == "Thank you Ravi Kumar, you are registered."


def test_balance_reads_the_demo_account_and_replies_through_its_template(demo):
    # given: a registered subscriber with money on their demo account
    sms("REG Asha")
    Account.objects.create(phone=PHONE, balance=Decimal("120.50"))
    # when
    reply = sms("BAL")
    # then
    assert reply == "Hi Asha, your balance is Rs 120.50."
    sent = Message.objects.filter(direction=Direction.OUTBOUND).latest("id")
    assert (sent.status, sent.dlt_template_id) == ("queued", BALANCE_TEMPLATE_ID)


def test_balance_for_an_unregistered_number(demo):
    Account.objects.create(phone=PHONE, balance=Decimal("99.00"))
    assert sms("bal") == "You are not registered yet. Send 1 to register."


def test_support_opens_a_ticket_and_replies_its_reference(demo):
    assert sms("3") == "Please describe your issue in one SMS."
    reply = sms("My SIM is blocked since Monday")
    ticket = SupportTicket.objects.get()
    inbound = Message.objects.get(direction=Direction.INBOUND, body="My SIM is blocked since Monday")
    assert reply == f"Ticket {ticket.reference} opened. Our team will call you back."
    assert (ticket.phone, ticket.issue, ticket.status, ticket.message) == (
        PHONE,
        "My SIM is blocked since Monday",
        "open",
        inbound,
    )


def test_register_and_support_are_flows_seed_demo_builds_valid(demo):
    call_command("seed_demo", verbosity=0)  # again: still one of each, unchanged
    flows = {flow.slug: flow for flow in Flow.objects.all()}
    assert sorted(flows) == ["register", "support"]
    assert [flow_problems(flow) for flow in flows.values()] == [[], []]
    assert [s.key for s in flows["register"].steps.all()] == ["name"]


@pytest.mark.parametrize(("code", "again"), [("1", "Send 1 to start again."), ("3", "Send 3 to start again.")])
def test_a_demo_flow_that_timed_out_says_so_through_its_template(demo, code, again):
    with freeze_time() as clock:
        sms(code)
        clock.tick(301)
        assert sms("Asha") == f"Your session timed out. {again}"
    sent = Message.objects.filter(direction=Direction.OUTBOUND)
    assert not sent.exclude(status="queued").exists()  # every reply passed DLT


def test_simulate_sms_walks_the_demo(demo, capsys):
    call_command("simulate_sms", "1", "Asha", "2", sender=PHONE, recipient="57675")
    out = capsys.readouterr().out
    assert "→ Welcome! Please reply with your name." in out
    assert "→ Thank you Asha, you are registered." in out
    assert "→ Hi Asha, your balance is Rs 0.00." in out
    assert "[sent via console, DLT template 1107170000000000005]" not in out  # 2 was sent registered
    assert f"[sent via console, DLT template {BALANCE_TEMPLATE_ID}]" in out


def test_support_agents_read_the_demo_accounts(demo, client):
    Account.objects.create(phone=PHONE, balance=Decimal("5.00"))
    agent = User.objects.create_user(username="agent", password="pw", is_staff=True)
    agent.groups.add(Group.objects.get(name="Support agents"))
    client.force_login(agent)
    response = client.get("/admin/demo/account/")
    assert response.status_code == 200
    assert PHONE.encode() in response.content
    assert client.get("/admin/demo/account/add/").status_code == 403

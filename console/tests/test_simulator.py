"""
The admin's simulator, driven by the test client: who may use it, the real pipeline it
runs, the thread and session it shows, and that no SMS leaves through the real gateway.
"""

from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from commands.models import Shortcode
from commands.tests.factories import CommandFactory
from conftest import FakeResponse
from console.roles import BUSINESS_STAFF, SUPPORT_AGENTS, roles_sync
from conversations.handling import inbound_handle
from conversations.receiving import CONSOLE_SIMULATOR_PROVIDER, message_receive
from conversations.sessions import session_get
from conversations.tests.factories import ASK_NAME, BALANCE, PHONE, registered, service_shortcode
from delivery.models import Message, Suppression
from delivery.providers.base import InboundSMS
from delivery.statuses import Direction, Status
from templates.models import Template

pytestmark = pytest.mark.django_db

URL = "/admin/console/simulator/"


@pytest.fixture
def gateway(provider_server):
    """Shortcode 57675 whose real provider is a local generic gateway: the simulator must never reach it."""
    service_shortcode(provider="generic", provider_config={"outbound_url": f"{provider_server.url}/send"})
    return provider_server


def staff_user(*, group: str | None = None, permission: str | None = None):
    user = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    if group:
        roles_sync()
        user.groups.add(Group.objects.get(name=group))
    if permission:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


@pytest.fixture
def staff(client):
    user = staff_user(group=BUSINESS_STAFF)
    client.force_login(user)
    return user


def simulate(client, text: str, *, phone: str = PHONE, shortcode: str = "57675", button: str = "send"):
    return client.post(URL, {"shortcode": shortcode, "phone": phone, "text": text, button: "1"})


def thread_url(phone: str = PHONE, shortcode: str = "57675") -> str:
    return f"{URL}?{urlencode({'shortcode': shortcode, 'phone': phone})}"


def section(page: str, element_id: str) -> str:
    """The HTML of the page's section with that id (up to its closing tag)."""
    start = page.index(f'id="{element_id}"')
    return page[start : page.index("</section>", start)]


# Who may use it ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "group, permission, status_code",
    [
        (BUSINESS_STAFF, None, 200),
        (None, "commands.change_command", 200),
        (SUPPORT_AGENTS, None, 403),
        (None, "commands.view_command", 403),
        (None, None, 403),
    ],
)
def test_only_staff_who_may_change_commands_use_it(client, gateway, group, permission, status_code):
    client.force_login(staff_user(group=group, permission=permission))

    assert client.get(URL).status_code == status_code
    assert simulate(client, "2").status_code in (status_code, 302)
    assert Message.objects.exists() is (status_code == 200)


def test_an_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_superuser_uses_it(admin_client, gateway):
    assert admin_client.get(URL).status_code == 200


# The real pipeline, through the console provider ---------------------------------------


def test_a_flow_walked_in_the_simulator_shows_its_thread_and_session(client, staff, gateway):
    # when: the subscriber starts the register flow
    response = simulate(client, "1")
    # then: back at the thread (a reload never sends again), the question asked, the session open
    assert response.status_code == 302
    assert response["Location"] == thread_url()
    page = client.get(response["Location"]).content.decode()
    assert ASK_NAME in section(page, "simulator-chat")
    session = section(page, "simulator-session")
    assert "answer" in session
    assert "End session" in session
    # when: the subscriber answers
    page = client.get(simulate(client, "Asha")["Location"]).content.decode()
    # then: the answer and the reply, in order, and no session left
    chat = section(page, "simulator-chat")
    assert chat.index(ASK_NAME) < chat.index("Asha") < chat.index(registered("Asha"))
    assert "No open session" in section(page, "simulator-session")
    assert session_get(shortcode="57675", phone=PHONE) is None


def test_replies_go_through_the_console_provider_and_nothing_reaches_the_gateway(client, staff, gateway):
    # when
    simulate(client, "2")
    # then: answered, delivered by the console provider, never by the shortcode's gateway
    inbound = Message.objects.get(direction=Direction.INBOUND)
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert (inbound.provider, inbound.status) == (CONSOLE_SIMULATOR_PROVIDER, Status.HANDLED)
    assert inbound.raw_payload == {"simulator": "admin", "user": "staff"}
    assert (reply.body, reply.provider, reply.status, reply.in_reply_to_id) == (
        BALANCE,
        "console",
        Status.SENT,
        inbound.id,
    )
    assert gateway.requests == []


def test_a_real_subscribers_messages_are_not_in_the_thread(client, staff, gateway):
    # given: the same number texted the shortcode for real
    gateway.script = [FakeResponse(200, {"id": "gw-1"})]
    real, _ = message_receive(
        provider="generic", sms=InboundSMS(sender=PHONE, recipient="57675", body="3", provider_message_id="real-1")
    )
    inbound_handle(message_id=real.id)
    assert Message.objects.filter(in_reply_to__provider="generic").exists()
    # when
    page = client.get(simulate(client, "2")["Location"]).content.decode()
    # then: only the simulated exchange
    chat = section(page, "simulator-chat")
    assert BALANCE in chat
    assert "Please call 1800" not in chat
    assert chat.count("data-direction=") == 2


def test_a_dlt_bound_shortcodes_reply_shows_its_template(client, staff):
    service_shortcode(dlt=True)

    page = client.get(simulate(client, "2")["Location"]).content.decode()

    template_id = Template.objects.get(content=BALANCE).dlt_template_id
    assert f"DLT {template_id}" in section(page, "simulator-chat")
    assert Message.objects.get(direction=Direction.OUTBOUND).dlt_template_id == template_id


def test_a_queue_commands_later_reply_joins_the_thread_through_the_console(client, staff, gateway):
    # given: code 7 hands its work to the demo's queued task, acknowledging at once
    CommandFactory(
        shortcode=Shortcode.objects.get(number="57675"),
        code="7",
        handler_key="queue",
        config={"task": "queued.demo.balance_reply", "ack": "One moment."},
    )
    # when
    page = client.get(simulate(client, "7")["Location"]).content.decode()
    # then: both replies, by the console provider, none through the gateway
    chat = section(page, "simulator-chat")
    assert chat.index("One moment.") < chat.index("You are not registered yet.")
    assert set(Message.objects.filter(direction=Direction.OUTBOUND).values_list("provider", flat=True)) == {"console"}
    assert gateway.requests == []


def test_a_national_number_is_read_in_the_shortcodes_country(client, staff, gateway):
    response = simulate(client, "2", phone="98765 43210")

    assert response["Location"] == thread_url(PHONE)
    assert Message.objects.get(direction=Direction.INBOUND).phone == PHONE


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"phone": "not a number"}, "numbers are read as IN numbers"),
        ({"phone": ""}, "This field is required."),
        ({"shortcode": "99999"}, "Select a valid choice."),
        ({"text": "x" * 1001}, "at most 1000 characters"),
    ],
)
def test_bad_input_is_answered_on_the_page_and_nothing_is_stored(client, staff, gateway, fields, error):
    data = {"shortcode": "57675", "phone": PHONE, "text": "2", "send": "1", **fields}

    response = client.post(URL, data)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Message.objects.exists()


def test_end_session_clears_the_phones_session(client, staff, gateway):
    simulate(client, "1")
    assert session_get(shortcode="57675", phone=PHONE) is not None

    response = simulate(client, "", button="clear")

    assert response.status_code == 302
    assert session_get(shortcode="57675", phone=PHONE) is None
    assert Message.objects.filter(direction=Direction.INBOUND).count() == 1


def test_a_simulated_stop_is_real_for_the_typed_number(client, staff, gateway):
    simulate(client, "STOP")

    assert Suppression.objects.filter(phone=PHONE, shortcode="57675").exists()
    assert gateway.requests == []


def test_the_thread_of_a_pair_opens_from_its_address(client, staff, gateway):
    simulate(client, "2")

    page = client.get(thread_url("9876543210")).content.decode()

    assert BALANCE in section(page, "simulator-chat")
    assert 'value="57675" selected' in page

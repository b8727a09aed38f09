"""The admin as business staff and support agents use it."""

import pytest
from django.contrib.auth.models import Group, User

from conversations.tests.factories import service_shortcode
from delivery.models import ChannelLog, DeliveryReport, Message
from delivery.statuses import Status
from delivery.tests.factories import InboundMessageFactory, OutboundMessageFactory


@pytest.fixture
def demo(db):
    """A shortcode with its commands; the staff and agent groups come with the migrations (console/roles.py)."""
    service_shortcode()


def user_in(group: str) -> User:
    user = User.objects.create_user(username=group.replace(" ", "_"), password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/commands/shortcode/",
        "/admin/commands/command/",
        "/admin/delivery/message/",
        "/admin/delivery/message/?q=9876543210",
        "/admin/delivery/message/?q=%2B919876543210",
        "/admin/delivery/deliveryreport/",
        "/admin/delivery/channellog/",
        "/admin/delivery/suppression/",
        "/admin/conversations/contact/",
        "/admin/conversations/supportticket/",
    ],
)
def test_support_agents_can_read_everything(demo, client, url):
    InboundMessageFactory(phone="+919876543210")
    client.force_login(user_in("Support agents"))
    response = client.get(url)
    assert response.status_code == 200


def test_agents_search_a_number_in_any_format(demo, client):
    inbound = InboundMessageFactory(phone="+919876543210", body="needle")
    InboundMessageFactory(phone="+919812345678", body="other")
    client.force_login(user_in("Support agents"))
    response = client.get("/admin/delivery/message/", {"q": "98765 43210"})
    assert b"needle" in response.content
    assert b"other" not in response.content
    assert client.get(f"/admin/delivery/message/{inbound.pk}/change/").status_code == 200


def test_support_agents_cannot_edit_configuration(demo, client):
    client.force_login(user_in("Support agents"))
    shortcode_id = __import__("commands.models", fromlist=["Shortcode"]).Shortcode.objects.get().pk
    assert client.get("/admin/commands/command/add/").status_code == 403
    response = client.post(f"/admin/commands/shortcode/{shortcode_id}/change/", {"name": "hacked"})
    assert response.status_code == 403


def test_business_staff_edit_commands_but_not_logs(demo, client):
    client.force_login(user_in("Business staff"))
    assert client.get("/admin/commands/command/add/").status_code == 200
    message = OutboundMessageFactory()
    assert client.post(f"/admin/delivery/message/{message.pk}/delete/").status_code == 403
    assert client.get("/admin/delivery/message/add/").status_code == 403


@pytest.mark.parametrize("model", [Message, DeliveryReport, ChannelLog])
def test_logs_are_read_only_even_for_superusers(demo, admin_client, model):
    from django.contrib import admin

    model_admin = admin.site._registry[model]
    request = type("R", (), {"user": User.objects.get(username="admin")})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert not model_admin.has_change_permission(request)


def test_sending_again_needs_its_permission(demo, client):
    failed = OutboundMessageFactory(status=Status.FAILED, provider="console", error_code="500")
    client.force_login(user_in("Business staff"))
    client.post("/admin/delivery/message/", {"action": "resend", "_selected_action": [failed.pk]}, follow=True)
    assert Message.objects.count() == 1

    client.force_login(user_in("Support agents"))
    response = client.post(
        "/admin/delivery/message/", {"action": "resend", "_selected_action": [failed.pk]}, follow=True
    )
    assert response.status_code == 200
    assert b"1 message sent again." in response.content
    assert Message.objects.exclude(pk=failed.pk).get().status in ("queued", "sent")


def test_command_admin_refuses_a_duplicate_alias(demo, admin_client):
    from commands.models import Command, Shortcode

    shortcode = Shortcode.objects.get()
    response = admin_client.post(
        "/admin/commands/command/add/",
        {
            "shortcode": shortcode.pk,
            "code": "9",
            "name": "Nine",
            "handler_key": "reply",
            "config": '{"text": "nine"}',
            "active": "on",
            "aliases-TOTAL_FORMS": "1",
            "aliases-INITIAL_FORMS": "0",
            "aliases-MIN_NUM_FORMS": "0",
            "aliases-MAX_NUM_FORMS": "1000",
            "aliases-0-keyword": "bal",
        },
    )
    assert response.status_code == 200
    assert b"Already used on this shortcode: BAL" in response.content
    assert not Command.objects.filter(code="9").exists()


def test_command_admin_saves_a_command_with_its_aliases(demo, admin_client):
    from commands.models import Command, Shortcode

    response = admin_client.post(
        "/admin/commands/command/add/",
        {
            "shortcode": Shortcode.objects.get().pk,
            "code": "help2",
            "name": "Help",
            "handler_key": "reply",
            "config": '{"text": "Call us"}',
            "active": "on",
            "aliases-TOTAL_FORMS": "1",
            "aliases-INITIAL_FORMS": "0",
            "aliases-MIN_NUM_FORMS": "0",
            "aliases-MAX_NUM_FORMS": "1000",
            "aliases-0-keyword": "assist",
        },
    )
    assert response.status_code == 302
    command = Command.objects.get(code="HELP2")
    assert list(command.aliases.values_list("keyword", flat=True)) == ["ASSIST"]

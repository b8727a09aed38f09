"""
The two roles: business staff edit configuration, support agents read the logs, work
tickets and send failed messages again, and neither role sees whole numbers.
"""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from commands.models import Shortcode
from console.roles import BUSINESS_STAFF, ROLES, SUPPORT_AGENTS, role_codenames, roles_sync
from conversations.tests.factories import service_shortcode
from delivery.statuses import Status
from delivery.tests.factories import InboundMessageFactory, OutboundMessageFactory


def codenames(role: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=role).permissions.values_list("content_type__app_label", "codename")
    }


def user_in(role: str) -> User:
    user = User.objects.create_user(username=role.replace(" ", "_").lower(), password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.mark.django_db
@pytest.mark.parametrize(
    "role, held, not_held",
    [
        (
            BUSINESS_STAFF,
            {
                "commands.change_shortcode",
                "commands.add_command",
                "commands.delete_alias",
                "templates.change_template",
                "delivery.view_message",
                "delivery.add_message",  # the console's send form
                "delivery.add_suppression",
                "conversations.view_contact",
            },
            {
                "delivery.change_message",
                "delivery.view_full_numbers",
                "delivery.requeue_message",
                "conversations.change_contact",
            },
        ),
        (
            SUPPORT_AGENTS,
            {
                "delivery.view_message",
                "delivery.view_deliveryreport",
                "delivery.view_channellog",
                "delivery.view_suppression",
                "delivery.requeue_message",
                "conversations.view_contact",
                "conversations.view_supportticket",
                "conversations.change_supportticket",
                "commands.view_shortcode",
            },
            {
                "commands.change_shortcode",
                "commands.add_command",
                "templates.change_template",
                "delivery.add_suppression",
                "delivery.delete_suppression",
                "delivery.view_full_numbers",
                "delivery.add_message",
                "conversations.change_contact",
            },
        ),
    ],
)
def test_the_migrations_create_both_roles_with_their_permissions(role, held, not_held):
    granted = codenames(role)
    assert held <= granted
    assert not (not_held & granted)


@pytest.mark.parametrize(
    "role, app_label, model, expected",
    [
        (BUSINESS_STAFF, "conversations", "flowstep", {"view", "add", "change", "delete"}),
        (BUSINESS_STAFF, "newapp", "thing", set()),
        (SUPPORT_AGENTS, "conversations", "flowstep", {"view"}),
        (SUPPORT_AGENTS, "bulk", "batch", {"view"}),
        (BUSINESS_STAFF, "bulk", "batch", {"view", "add", "change", "delete"}),
    ],
)
def test_models_added_later_are_granted_by_pattern(role, app_label, model, expected):
    assert role_codenames(role, app_label=app_label, model=model) == {f"{action}_{model}" for action in expected}


@pytest.mark.django_db
def test_sync_puts_the_definition_back_and_leaves_other_apps_alone():
    # given: a permission given by hand inside the governed apps, one outside, one taken away
    agents = Group.objects.get(name=SUPPORT_AGENTS)
    agents.permissions.add(Permission.objects.get(codename="change_shortcode"))
    agents.permissions.add(Permission.objects.get(codename="view_account"))
    agents.permissions.remove(Permission.objects.get(codename="view_message"))

    # when
    held = roles_sync()

    # then
    granted = codenames(SUPPORT_AGENTS)
    assert "commands.change_shortcode" not in granted
    assert {"demo.view_account", "delivery.view_message"} <= granted
    assert held[SUPPORT_AGENTS] == len(granted) - 1  # all but the demo's


@pytest.mark.django_db
def test_sync_creates_missing_groups_and_is_idempotent():
    Group.objects.filter(name__in=ROLES).delete()
    first = roles_sync()
    before = {role: codenames(role) for role in ROLES}
    assert roles_sync() == first
    assert {role: codenames(role) for role in ROLES} == before


@pytest.mark.django_db(transaction=True)
def test_the_roles_migration_grants_without_post_migrate():
    # given: the roles migration undone (groups gone)
    executor = MigrationExecutor(connection)
    executor.migrate([("console", None)])
    assert not Group.objects.filter(name__in=ROLES).exists()

    # when: only the migration runs again, no post_migrate signal
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    # then
    assert {"delivery.view_message", "delivery.requeue_message"} <= codenames(SUPPORT_AGENTS)
    assert "commands.change_command" in codenames(BUSINESS_STAFF)


# The roles in the admin -----------------------------------------------------------------------


@pytest.fixture
def shortcode(db):
    return service_shortcode()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/delivery/message/",
        "/admin/delivery/deliveryreport/",
        "/admin/delivery/channellog/",
        "/admin/delivery/suppression/",
        "/admin/conversations/contact/",
        "/admin/conversations/supportticket/",
        "/admin/commands/shortcode/",
        "/admin/console/conversation/?phone=%2B919876543210",
    ],
)
def test_agents_read_messages_reports_logs_contacts_suppressions_and_tickets(shortcode, client, path):
    InboundMessageFactory(phone="+919876543210")
    client.force_login(user_in(SUPPORT_AGENTS))
    assert client.get(path).status_code == 200


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/admin/commands/command/add/"),
        ("post", "/admin/commands/shortcode/{shortcode}/change/"),
        ("post", "/admin/commands/shortcode/{shortcode}/delete/"),
        ("get", "/admin/templates/template/add/"),
        ("get", "/admin/delivery/suppression/add/"),
        ("post", "/admin/conversations/contact/{contact}/change/"),
    ],
)
def test_agents_change_no_configuration(shortcode, client, method, path):
    from conversations.tests.factories import ContactFactory

    contact = ContactFactory()
    client.force_login(user_in(SUPPORT_AGENTS))
    response = getattr(client, method)(path.format(shortcode=shortcode.pk, contact=contact.pk), {"name": "hacked"})
    assert response.status_code == 403
    assert Shortcode.objects.get().name != "hacked"


def test_agents_see_a_shortcode_read_only(shortcode, client):
    client.force_login(user_in(SUPPORT_AGENTS))
    page = client.get(f"/admin/commands/shortcode/{shortcode.pk}/change/").content.decode()
    assert 'name="_save"' not in page


@pytest.mark.parametrize("path", ["/admin/commands/command/add/", "/admin/templates/template/add/"])
def test_staff_edit_configuration(shortcode, client, path):
    client.force_login(user_in(BUSINESS_STAFF))
    assert client.get(path).status_code == 200


def test_staff_do_not_send_failed_messages_again_but_agents_do(shortcode, client, django_capture_on_commit_callbacks):
    failed = OutboundMessageFactory(status=Status.FAILED, error_code="500", provider="console")
    client.force_login(user_in(BUSINESS_STAFF))
    assert client.post(f"/admin/delivery/message/{failed.pk}/resend/").status_code == 403

    client.force_login(user_in(SUPPORT_AGENTS))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/delivery/message/{failed.pk}/resend/")

    assert response.status_code == 302
    assert OutboundMessageFactory._meta.model.objects.count() == 2

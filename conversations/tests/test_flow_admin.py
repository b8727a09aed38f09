"""Building a flow in the admin, and support agents working tickets."""

import pytest
from django.contrib.auth.models import Permission, User

from commands.tests.factories import CommandFactory, ShortcodeFactory
from conversations.models import Flow, FlowStep, FlowStepOption, SupportTicket
from conversations.tests.factories import service_shortcode
from conversations.tests.flow_factories import PHONE, flow_create, recharge_flow, sms

FLOW_ADD = "/admin/conversations/flow/add/"


@pytest.fixture
def staff(db):
    return User.objects.create_superuser(username="staff", password="pw", email="staff@example.com")


def flow_form(shortcode_id: int, steps: list[dict], options: list[dict], **fields) -> dict:
    """The add form as the browser posts it: the flow's fields and both inlines."""
    data = {
        "shortcode": shortcode_id,
        "name": "Recharge",
        "slug": "recharge",
        "active": "on",
        "session_ttl": 300,
        "timeout_reply": "",
        "cancel_keywords": "0, MENU, CANCEL",
        "cancel_reply": "",
        "give_up_reply": "Too many invalid answers. Please start again.",
        "completion_action": "reply",
        "completion_reply": "Thanks {name}!",
        "endpoint_url": "",
        "secret_env": "",
        "endpoint_timeout": 5,
        "endpoint_retries": 2,
        "task_name": "",
        **fields,
    }
    for prefix, rows in (("steps", steps), ("options", options)):
        data |= {f"{prefix}-TOTAL_FORMS": len(rows), f"{prefix}-INITIAL_FORMS": 0}
        data |= {f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000}
        for index, row in enumerate(rows):
            data |= {f"{prefix}-{index}-{name}": value for name, value in row.items()}
    return data


def step(key: str, position: int, **fields) -> dict:
    return {
        "key": key,
        "position": position,
        "answer_key": key,
        "prompt": f"Your {key}?",
        "prompt_template": "",
        "template_values": "",
        "input_kind": "text",
        "pattern": "",
        "error_reply": "Please try again.",
        "retry_limit": 2,
        "next_step": "",
        **fields,
    }


def option(step_key: str, value: str, label: str, next_step: str) -> dict:
    return {"step_key": step_key, "position": 0, "value": value, "label": label, "next_step": next_step}


def test_staff_build_a_branching_flow_on_one_page(client, staff):
    # given
    shortcode = ShortcodeFactory(number="57675", dlt_bound=False)
    client.force_login(staff)
    data = flow_form(
        shortcode.id,
        steps=[step("name", 0), step("plan", 1, input_kind="choice"), step("amount", 2, next_step="END")],
        options=[option("plan", "1", "prepaid", "amount"), option("plan", "2", "postpaid", "END")],
    )
    # when
    response = client.post(FLOW_ADD, data)
    # then
    assert response.status_code == 302, response.content.decode()[:3000]
    flow = Flow.objects.get(slug="recharge")
    assert list(flow.steps.values_list("key", flat=True)) == ["name", "plan", "amount"]
    assert sorted(flow.options.values_list("value", "next_step")) == [("1", "amount"), ("2", "END")]


@pytest.mark.parametrize(
    ("steps", "options", "problem"),
    [
        ([step("name", 0, prompt="")], [], "Step &#x27;name&#x27; has no prompt."),
        ([step("name", 0, next_step="nowhere")], [], "Step &#x27;name&#x27; goes to &#x27;nowhere&#x27;"),
        (
            [step("plan", 0, input_kind="choice")],
            [option("plan", "1", "a", "plan"), option("plan", "2", "b", "plan")],
            "loop with no way to finish the flow",
        ),
        ([step("name", 0, prompt="Hi {nam}")], [], "uses {nam}, which no step saves"),
    ],
)
def test_a_flow_with_problems_is_not_saved_and_they_are_shown(client, staff, steps, options, problem):
    shortcode = ShortcodeFactory(number="57675", dlt_bound=False)
    client.force_login(staff)
    response = client.post(FLOW_ADD, flow_form(shortcode.id, steps=steps, options=options))
    assert response.status_code == 200
    assert problem in response.content.decode()
    assert not Flow.objects.exists() and not FlowStep.objects.exists() and not FlowStepOption.objects.exists()


def test_a_dlt_bound_shortcodes_flow_must_use_registered_texts(client, staff):
    shortcode = service_shortcode(dlt=True)
    client.force_login(staff)
    response = client.post(FLOW_ADD, flow_form(shortcode.id, steps=[step("name", 0)], options=[]))
    assert response.status_code == 200
    assert "matches no approved DLT template of header SMSGTE" in response.content.decode()
    assert not Flow.objects.exists()


# Tickets ----------------------------------------------------------------------------------


@pytest.fixture
def agent(db):
    user = User.objects.create_user(username="agent", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="conversations", codename__in=["view_supportticket", "change_supportticket"]
        )
    )
    return user


@pytest.fixture
def ticket(db):
    """A ticket opened by SMS through a one-step support flow."""
    shortcode = service_shortcode()
    flow_create(
        shortcode,
        "helpdesk",
        steps=[{"key": "issue", "prompt": "Please describe your issue in one SMS."}],
        completion_action="ticket",
        completion_reply="Ticket {reference} opened.",
    )
    CommandFactory(shortcode=shortcode, code="6", name="Helpdesk", handler_key="flow", config={"flow": "helpdesk"})
    sms("6")
    sms("My SIM is blocked")
    return SupportTicket.objects.get()


def test_agents_change_status_and_assignee_but_not_the_report(client, agent, ticket):
    client.force_login(agent)
    url = f"/admin/conversations/supportticket/{ticket.pk}/change/"
    # when: the agent also tries to rewrite the issue and the number
    response = client.post(
        url, {"status": "in_progress", "assignee": agent.pk, "issue": "nothing", "phone": "+910000000000"}
    )
    # then
    assert response.status_code == 302, response.content.decode()[:2000]
    ticket.refresh_from_db()
    assert (ticket.status, ticket.assignee, ticket.issue, ticket.phone) == (
        "in_progress",
        agent,
        "My SIM is blocked",
        PHONE,
    )


def test_the_ticket_page_links_to_the_conversation_without_the_number(client, agent, ticket):
    client.force_login(agent)
    page = client.get(f"/admin/conversations/supportticket/{ticket.pk}/change/").content.decode()
    assert f'href="/admin/console/conversation/?message={ticket.message_id}"' in page
    assert PHONE not in page  # masked: agents see the last four digits only
    assert "3210" in page


@pytest.mark.parametrize(
    ("action", "status"), [("mark_in_progress", "in_progress"), ("mark_closed", "closed"), ("mark_open", "open")]
)
def test_status_actions(client, agent, ticket, action, status):
    SupportTicket.objects.filter(pk=ticket.pk).update(status="in_progress" if status == "open" else "open")
    client.force_login(agent)
    response = client.post(
        "/admin/conversations/supportticket/", {"action": action, "_selected_action": [ticket.pk]}, follow=True
    )
    assert "1 ticket marked" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.status == status


def test_assign_to_me(client, agent, ticket):
    client.force_login(agent)
    client.post("/admin/conversations/supportticket/", {"action": "assign_to_me", "_selected_action": [ticket.pk]})
    ticket.refresh_from_db()
    assert ticket.assignee == agent


def test_tickets_are_not_added_in_the_admin(client, agent):
    client.force_login(agent)
    assert client.get("/admin/conversations/supportticket/add/").status_code == 403


def change_form(flow: Flow, *, delete_steps: tuple[str, ...] = ()) -> dict:
    """The change form of a saved flow as the browser posts it, with some steps ticked for deletion."""
    steps = [
        {**step(s.key, s.position, **{f: getattr(s, f) for f in ("prompt", "input_kind", "next_step")}), "id": s.pk}
        | ({"DELETE": "on"} if s.key in delete_steps else {})
        for s in flow.steps.all()
    ]
    options = [option(o.step_key, o.value, o.label, o.next_step) | {"id": o.pk} for o in flow.options.all()]
    data = flow_form(flow.shortcode_id, steps=steps, options=options, completion_reply=flow.completion_reply)
    data |= {"steps-INITIAL_FORMS": len(steps), "options-INITIAL_FORMS": len(options)}
    for prefix, rows in (("steps", steps), ("options", options)):
        data |= {f"{prefix}-{index}-flow": flow.pk for index in range(len(rows))}
    return data


@pytest.mark.parametrize(("deleted", "saved"), [((), True), (("due",), False), (("amount", "due"), False)])
def test_deleting_a_step_a_branch_names_is_refused(client, staff, deleted, saved):
    # given: the recharge flow, whose plan options branch to amount and due
    flow = recharge_flow(ShortcodeFactory(number="57675", dlt_bound=False))
    client.force_login(staff)
    # when
    response = client.post(f"/admin/conversations/flow/{flow.pk}/change/", change_form(flow, delete_steps=deleted))
    # then
    if saved:
        assert response.status_code == 302, response.content.decode()[:3000]
    else:
        assert response.status_code == 200
        assert "which is not a step" in response.content.decode()
        assert flow.steps.count() == 4

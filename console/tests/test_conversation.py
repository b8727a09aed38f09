"""
One conversation per phone: the thread a support agent reads, found by search or from a
message or contact, kept current by polling, numbers masked for those without the right.
"""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone
from freezegun import freeze_time

from console.conversation import conversation_timeline
from conversations.sessions import Session, session_save
from conversations.tests.factories import ContactFactory
from delivery.models import ChannelLog, DeliveryReport, Message, Suppression
from delivery.statuses import Status
from delivery.tests.factories import InboundMessageFactory, OutboundMessageFactory

PHONE = "+919876543210"
MASKED = "+91******3210"
PAGE = "/admin/console/conversation/"
UPDATES = "/admin/console/conversation/updates/"


def user_in(role: str, *, full_numbers: bool = False) -> User:
    user = User.objects.create_user(username=role.replace(" ", "_").lower(), password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    if full_numbers:
        user.user_permissions.add(Permission.objects.get(codename="view_full_numbers"))
    return user


@pytest.fixture
def agent(db, client):
    user = user_in("Support agents")
    client.force_login(user)
    return user


@pytest.fixture
def thread(db):
    """A phone's history: a question, a delivered answer, a failed one, a refusal, STOP, a rate-limited SMS."""
    now = timezone.now()

    def at(minutes):
        return now - timedelta(minutes=60 - minutes)

    with freeze_time(at(0)):
        question = InboundMessageFactory(phone=PHONE, body="2", status=Status.HANDLED, provider="twilio")
        ChannelLog.objects.create(
            kind="inbound", provider="twilio", message=question, request="From=%2B919876543210&Body=2", status_code=200
        )
    with freeze_time(at(1)):
        delivered = OutboundMessageFactory(
            phone=PHONE, in_reply_to=question, status=Status.DELIVERED, delivered_at=at(2), body="Balance Rs 120"
        )
        ChannelLog.objects.create(
            kind="send", provider="generic", message=delivered, request=json.dumps({"to": PHONE}), status_code=200
        )
    with freeze_time(at(2)):
        DeliveryReport.objects.create(
            message=delivered, provider="generic", provider_status="DELIVRD", status="delivered", applied=True
        )
    with freeze_time(at(3)):
        failed = OutboundMessageFactory(
            phone=PHONE, status=Status.FAILED, body="Offer of the day", error_code="21610", error_message="unreachable"
        )
    with freeze_time(at(4)):
        stop = InboundMessageFactory(phone=PHONE, body="stop", status=Status.HANDLED)
        Suppression.objects.create(phone=PHONE, shortcode="57675", keyword="STOP", message=stop)
    with freeze_time(at(5)):
        refused = OutboundMessageFactory(
            phone=PHONE, status=Status.REFUSED, body="Another offer", error_code="opted_out", error_message="opted out"
        )
    with freeze_time(at(6)):
        limited = InboundMessageFactory(phone=PHONE, body="1", status=Status.RATE_LIMITED)
    InboundMessageFactory(phone="+919812345678", body="someone else")
    return {"question": question, "delivered": delivered, "failed": failed, "stop": stop, "refused": refused}, limited


def test_the_timeline_tells_the_whole_story_in_order(thread):
    messages, limited = thread

    entries = conversation_timeline(PHONE)

    assert [(e.side, e.text, e.status) for e in entries] == [
        ("in", "2", "handled"),
        ("out", "Balance Rs 120", "delivered"),
        ("out", "Offer of the day", "failed"),
        ("in", "stop", "handled"),
        ("out", "Another offer", "refused"),
        ("in", "1", "rate_limited"),
    ]
    by_text = {e.text: e for e in entries}
    assert [(r.provider_status, r.status) for r in by_text["Balance Rs 120"].reports] == [("DELIVRD", "delivered")]
    assert [c.kind for c in by_text["Balance Rs 120"].calls] == ["send call"]
    assert by_text["Offer of the day"].reason == "21610: unreachable"
    assert by_text["Another offer"].reason == "opted_out: opted out"
    assert by_text["stop"].labels == ("opted out (STOP)",)
    assert by_text["1"].labels == ("rate limited: not answered",)


def test_an_opt_out_not_made_by_sms_is_an_event_of_its_own(db):
    InboundMessageFactory(phone=PHONE, body="hello")
    Suppression.objects.create(phone=PHONE, shortcode="", keyword="", source="provider")

    entries = conversation_timeline(PHONE)

    assert [(e.side, e.text) for e in entries][-1] == ("event", "Opted out of all shortcodes (provider).")


def test_the_page_shows_the_thread_to_an_agent_with_numbers_masked(thread, agent, client):
    messages, _ = thread

    response = client.get(PAGE, {"phone": "09876543210"})

    page = response.content.decode()
    assert response.status_code == 200
    assert f"Conversation with {MASKED}" in page
    for text in ("Balance Rs 120", "DELIVRD", "Reason: 21610: unreachable", "opted out (STOP)", "rate limited"):
        assert text in page
    assert "<details" in page and "From=%2B91******3210&amp;Body=2" in page
    assert "someone else" not in page
    # Only the search box and the page's own polls hold the number, as the agent typed it.
    assert "9876543210" not in page.replace('value="09876543210"', "").replace("?phone=09876543210", "")


def test_a_user_allowed_full_numbers_sees_them(thread, client):
    client.force_login(user_in("Support agents", full_numbers=True))
    page = client.get(PAGE, {"phone": PHONE}).content.decode()
    assert f"Conversation with {PHONE}" in page
    assert "From=%2B919876543210" in page


@pytest.mark.parametrize("via", ["message", "contact"])
def test_links_name_a_message_or_contact_not_a_number(thread, agent, client, via):
    messages, _ = thread
    target = messages["failed"].pk if via == "message" else ContactFactory(phone=PHONE).pk

    page = client.get(PAGE, {via: target}).content.decode()

    assert f"Conversation with {MASKED}" in page
    assert "Offer of the day" in page


@pytest.mark.parametrize(
    "query, status",
    [({"phone": "not a number"}, 400), ({"message": "999999"}, 404), ({"contact": "x"}, 404), ({}, 200)],
)
def test_bad_input_is_a_clear_answer(agent, client, query, status):
    response = client.get(PAGE, query)
    assert response.status_code == status
    if status == 400:
        assert "Not a phone number" in response.content.decode()


def test_the_page_shows_the_open_session_and_the_opt_out(thread, agent, client):
    session_save(shortcode="57675", phone=PHONE, session=Session(7, "3", "issue", {"name": "Asha"}), ttl=300)

    page = client.get(PAGE, {"phone": PHONE}).content.decode()

    assert "Open session on 57675" in page and "issue" in page and "Asha" in page
    assert "Opted out of:" in page


@pytest.mark.parametrize("role", [None])
def test_the_page_needs_the_view_permission(db, client, role):
    client.force_login(User.objects.create_user("nobody", password="pw", is_staff=True))
    assert client.get(PAGE, {"phone": PHONE}).status_code == 403
    assert client.get(UPDATES, {"phone": PHONE, "after": timezone.now().isoformat()}).status_code == 403


def test_the_page_needs_a_staff_login(db, client):
    response = client.get(PAGE, {"phone": PHONE})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# Live updates -----------------------------------------------------------------------------------


def test_updates_bring_new_messages_and_changed_statuses_only(thread, agent, client):
    messages, _ = thread
    page = client.get(PAGE, {"message": messages["question"].pk})
    cursor = page.context["cursor"]

    # nothing changed: nothing older than the overlap comes again
    quiet = client.get(UPDATES, {"message": messages["question"].pk, "after": cursor}).json()
    keys_before = {entry["key"] for entry in quiet["entries"]}

    with freeze_time(timezone.now() + timedelta(seconds=30)):
        reply = InboundMessageFactory(phone=PHONE, body="3")
        DeliveryReport.objects.create(
            message=messages["failed"], provider="generic", provider_status="UNDELIV", error_code="21610"
        )
        update = client.get(UPDATES, {"message": messages["question"].pk, "after": quiet["cursor"]}).json()

    keys = [entry["key"] for entry in update["entries"]]
    assert keys == [f"message-{messages['failed'].pk}", f"message-{reply.pk}"]
    assert "UNDELIV" in update["entries"][0]["html"]
    assert keys_before <= {f"message-{m.pk}" for m in Message.objects.all()}
    assert update["cursor"] > quiet["cursor"]


def test_updates_are_masked_too(thread, agent, client):
    messages, _ = thread
    since = (messages["question"].created_at - timedelta(seconds=1)).isoformat()

    update = client.get(UPDATES, {"phone": PHONE, "after": since}).json()

    html = "".join(entry["html"] for entry in update["entries"])
    assert "%2B91******3210" in html and "9876543210" not in html


@pytest.mark.parametrize(
    "query", [{"phone": PHONE}, {"after": "2026-01-01T00:00:00+00:00"}, {"phone": "nope", "after": "2026-01-01"}]
)
def test_updates_without_a_phone_or_cursor_are_a_bad_request(agent, client, query):
    response = client.get(UPDATES, query)
    assert response.status_code == 400
    assert "error" in response.json()


# Queries --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [10, 1000])
def test_the_page_runs_the_same_queries_at_any_length(agent, client, django_assert_num_queries, rows):
    messages = Message.objects.bulk_create(
        OutboundMessageFactory.build(phone=PHONE, status=Status.SENT, body=f"n{n}") for n in range(rows)
    )
    DeliveryReport.objects.bulk_create(
        DeliveryReport(message=m, provider="generic", provider_status="DELIVRD", raw_payload={}) for m in messages
    )
    ChannelLog.objects.bulk_create(ChannelLog(kind="send", provider="generic", message=m) for m in messages)
    client.get(PAGE)

    # session, user, permissions (2), messages, reports, calls, shortcodes, suppression events,
    # the phone's shortcodes (for sessions), what it opted out of
    with django_assert_num_queries(11):
        response = client.get(PAGE, {"phone": PHONE})

    assert len(response.context["thread"].entries) == min(rows, 200)

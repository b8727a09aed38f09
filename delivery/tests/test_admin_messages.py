"""
The message list and pages as support agents and staff use them: filters, exact search,
masked numbers, a constant number of queries at any table size, the CSV export, and
sending a failed message again.
"""

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from delivery.admin import BoundedCountPaginator
from delivery.admin_masking import payload_shown, phone_shown, text_shown
from delivery.models import ChannelLog, DeliveryReport, Message, Suppression
from delivery.statuses import Status
from delivery.tests.factories import InboundMessageFactory, OutboundMessageFactory

PHONE = "+919876543210"
MASKED = "+91******3210"
MESSAGES = "/admin/delivery/message/"


def user_in(role: str, *, full_numbers: bool = False) -> User:
    user = User.objects.create_user(username=role.replace(" ", "_").lower(), password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    if full_numbers:
        user.user_permissions.add(Permission.objects.get(codename="view_full_numbers"))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def agent(db, client):
    user = user_in("Support agents")
    client.force_login(user)
    return user


def messages_bulk_create(count: int, **fields) -> None:
    Message.objects.bulk_create(
        OutboundMessageFactory.build(phone=f"+9198765{n:05d}", provider_message_id=f"gw-{n}", **fields)
        for n in range(count)
    )


# Masking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, shown",
    [
        ("+919876543210", MASKED),
        ("From=%2B919876543210&Body=STOP", "From=%2B91******3210&Body=STOP"),
        ('{"from": "919876543210"}', '{"from": "********3210"}'),
        ("msisdn 09876543210 said", "msisdn *******3210 said"),
        ("shortcode 57675, code 1", "shortcode 57675, code 1"),
    ],
)
def test_numbers_in_free_text_are_masked_but_their_last_four_digits(text, shown):
    assert text_shown(text, visible=False, phones=[PHONE]) == shown
    assert text_shown(text, visible=True, phones=[PHONE]) == text


def test_a_payload_is_shown_indented_and_masked():
    assert payload_shown({"From": PHONE}, visible=False) == '{\n  "From": "+91******3210"\n}'
    assert phone_shown(PHONE, visible=True) == PHONE


@pytest.mark.parametrize(
    "path",
    [
        "/admin/delivery/message/",
        "/admin/delivery/message/{inbound}/change/",
        "/admin/delivery/message/{inbound}/history/",
        "/admin/delivery/message/{outbound}/change/",
        "/admin/delivery/message/export.csv",
        "/admin/delivery/deliveryreport/",
        "/admin/delivery/deliveryreport/{report}/change/",
        "/admin/delivery/channellog/",
        "/admin/delivery/channellog/{log}/change/",
        "/admin/delivery/suppression/",
        "/admin/delivery/suppression/{suppression}/change/",
        "/admin/conversations/contact/",
        "/admin/conversations/contact/{contact}/change/",
    ],
)
def test_agents_never_see_a_whole_number(agent, client, path):
    # given: a number in every place it is stored
    from conversations.tests.factories import ContactFactory

    inbound = InboundMessageFactory(phone=PHONE, body="STOP", raw_payload={"From": PHONE, "Body": "STOP"})
    outbound = OutboundMessageFactory(phone=PHONE, in_reply_to=inbound, status=Status.SENT)
    report = DeliveryReport.objects.create(
        message=outbound, provider="generic", provider_status="DELIVRD", raw_payload={"msisdn": PHONE[1:]}
    )
    log = ChannelLog.objects.create(
        kind="inbound",
        provider="twilio",
        message=inbound,
        url="/webhooks/twilio/inbound/",
        request="From=%2B919876543210",
    )
    suppression = Suppression.objects.create(phone=PHONE, shortcode="57675", keyword="STOP", message=inbound)
    contact = ContactFactory(phone=PHONE)
    ids = {"inbound": inbound.pk, "outbound": outbound.pk, "report": report.pk, "log": log.pk}
    ids |= {"suppression": suppression.pk, "contact": contact.pk}

    # when
    response = client.get(path.format(**ids))

    # then
    page = (b"".join(response.streaming_content) if response.streaming else response.content).decode()
    assert response.status_code == 200
    assert PHONE[1:] not in page  # nor any form of it: +91..., 91..., %2B91...
    assert "9876543210" not in page


def test_a_user_with_the_permission_sees_whole_numbers(db, client):
    client.force_login(user_in("Support agents", full_numbers=True))
    inbound = InboundMessageFactory(phone=PHONE, raw_payload={"From": PHONE})

    listing = client.get(MESSAGES).content.decode()
    page = client.get(f"/admin/delivery/message/{inbound.pk}/change/").content.decode()

    assert PHONE in listing
    assert f"&quot;From&quot;: &quot;{PHONE}&quot;" in page


@pytest.mark.parametrize("typed", ["+919876543210", "919876543210", "09876543210", "98765 43210"])
def test_agents_find_a_number_typed_in_any_format_and_see_it_masked(agent, client, typed):
    InboundMessageFactory(phone=PHONE, body="needle")
    InboundMessageFactory(phone="+919812345678", body="other")

    page = client.get(MESSAGES, {"q": typed}).content.decode()
    rows = page[page.index('id="result_list"') :]

    assert "needle" in rows and "other" not in rows
    assert MASKED in rows and PHONE not in rows


def test_agents_find_a_message_by_its_provider_id(agent, client):
    OutboundMessageFactory(provider_message_id="SM123", body="needle")
    OutboundMessageFactory(provider_message_id="SM1234", body="other")

    page = client.get(MESSAGES, {"q": "SM123"}).content.decode()

    assert "needle" in page and "other" not in page


@pytest.mark.parametrize(
    ("path", "term", "found"),
    [
        (MESSAGES, "gw-1", True),
        (MESSAGES, "GW-1", False),  # an id is compared as stored: exactly, by its index
        (MESSAGES, "+9198765", False),  # no partial numbers
        (MESSAGES, "UUID", True),
        (MESSAGES, "UUID-UPPER", True),
        ("/admin/delivery/deliveryreport/", "gw-1", True),
        ("/admin/delivery/deliveryreport/", "98765 00001", True),
        ("/admin/delivery/channellog/", "98765 00001", True),
        ("/admin/delivery/channellog/", "UUID", True),
    ],
)
def test_searches_on_the_big_tables_are_exact_and_use_an_index(agent, client, path, term, found):
    message = OutboundMessageFactory(phone="+919876500001", provider_message_id="gw-1", body="needle")
    DeliveryReport.objects.create(
        message=message, provider="generic", provider_message_id="gw-1", status=Status.DELIVERED, raw_payload={}
    )
    ChannelLog.objects.create(kind=ChannelLog.Kind.SEND, provider="generic", message=message, url="https://gw/send")
    term = {"UUID": str(message.uuid), "UUID-UPPER": str(message.uuid).upper()}.get(term, term)

    page = client.get(path, {"q": term}).content.decode()

    # the message's row: its text in the message list, its link in the report and log lists
    rows = page[page.index('id="changelist"') :]
    assert (f"message #{message.id}" in rows or "needle" in rows) is found


# Filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, shown",
    [
        ({"direction__exact": "in"}, {"inbound hello"}),
        ({"status__exact": "failed"}, {"failed one"}),
        ({"error_code": "opted_out"}, {"refused one"}),
        ({"shortcode": "56161"}, {"other shortcode"}),
        ({"provider": "twilio"}, {"via twilio"}),
        ({"created_at__gte": "2000-01-01 00:00:00+00:00", "created_at__lt": "2000-01-02 00:00:00+00:00"}, {"long ago"}),
        ({}, {"inbound hello", "failed one", "refused one", "other shortcode", "via twilio", "long ago"}),
    ],
)
def test_the_list_filters_by_direction_status_reason_shortcode_provider_and_date(agent, client, query, shown):
    InboundMessageFactory(body="inbound hello")
    OutboundMessageFactory(body="failed one", status=Status.FAILED, error_code="500")
    OutboundMessageFactory(body="refused one", status=Status.REFUSED, error_code="opted_out")
    OutboundMessageFactory(body="other shortcode", shortcode="56161")
    OutboundMessageFactory(body="via twilio", provider="twilio")
    old = OutboundMessageFactory(body="long ago")
    Message.objects.filter(pk=old.pk).update(created_at=datetime(2000, 1, 1, 12, tzinfo=UTC))

    page = client.get(MESSAGES, query).content.decode()

    bodies = {
        body for body in Message.objects.values_list("body", flat=True) if f'<td class="field-text">{body}<' in page
    }
    assert bodies == shown


def test_filter_choices_come_from_the_newest_rows(agent, client):
    OutboundMessageFactory(provider="sinch", error_code="E42", status=Status.FAILED, shortcode="56161")

    page = client.get(MESSAGES).content.decode()

    for choice in ("?provider=sinch", "?error_code=E42", "?shortcode=56161", "?error_code=dlt_no_template"):
        assert choice in page


# Queries and counting -----------------------------------------------------------------------


@pytest.mark.parametrize("rows", [10, 1000])
def test_the_list_runs_the_same_queries_at_any_size(agent, client, django_assert_num_queries, rows):
    messages_bulk_create(rows, status=Status.FAILED, error_code="500")
    client.get(MESSAGES)  # the session and permissions cached as on any later page

    # session, user, permissions (the user's, its groups'), choices of 3 filters, the bounded count, the page
    with django_assert_num_queries(9):
        response = client.get(MESSAGES, {"status__exact": "failed"})

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == min(rows, 50)


@pytest.mark.parametrize("rows", [10, 1000])
def test_report_and_log_lists_run_the_same_queries_at_any_size(agent, client, django_assert_num_queries, rows):
    messages_bulk_create(1)
    message = Message.objects.get()
    DeliveryReport.objects.bulk_create(
        DeliveryReport(message=message, provider="generic", provider_message_id=f"gw-{n}", raw_payload={})
        for n in range(rows)
    )
    ChannelLog.objects.bulk_create(ChannelLog(kind="send", provider="generic", message=message) for _ in range(rows))
    client.get(MESSAGES)

    for path in ("/admin/delivery/deliveryreport/", "/admin/delivery/channellog/"):
        # session, user, permissions (2), choices of 2 filters, the bounded count, the page
        with django_assert_num_queries(8):
            assert client.get(path).status_code == 200


def test_a_list_past_the_count_limit_says_more_than(agent, client, monkeypatch):
    monkeypatch.setattr(BoundedCountPaginator, "COUNT_LIMIT", 20)
    messages_bulk_create(30)

    page = client.get(MESSAGES).content.decode()

    assert "more than 20 messages" in page


# CSV export -------------------------------------------------------------------------------------


def export_rows(client, **query) -> list[dict]:
    response = client.get("/admin/delivery/message/export.csv", query)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_streams_the_current_filter_with_numbers_masked(agent, client):
    OutboundMessageFactory(phone=PHONE, status=Status.FAILED, error_code="500", body="=HYPERLINK(1)")
    OutboundMessageFactory(phone=PHONE, status=Status.DELIVERED, delivered_at=timezone.now())

    rows = export_rows(client, status__exact="failed")

    assert [(row["phone"], row["status"], row["error_code"]) for row in rows] == [(MASKED, "failed", "500")]
    # A spreadsheet would run it as a formula.
    assert rows[0]["body"] == "'=HYPERLINK(1)"


def test_the_export_follows_the_search_and_shows_whole_numbers_to_those_allowed(db, client):
    client.force_login(user_in("Support agents", full_numbers=True))
    OutboundMessageFactory(phone=PHONE)
    OutboundMessageFactory(phone="+919812345678")

    rows = export_rows(client, q="09876543210")

    assert [row["phone"] for row in rows] == [PHONE]


def test_the_export_needs_the_view_permission(db, client):
    client.force_login(User.objects.create_user("nobody", password="pw", is_staff=True))
    assert client.get("/admin/delivery/message/export.csv").status_code == 403


def test_an_unknown_filter_in_the_export_is_a_bad_request(agent, client):
    assert client.get("/admin/delivery/message/export.csv", {"nonsense__exact": "1"}).status_code in (400, 302)


# Sending again -------------------------------------------------------------------------------


def test_an_agent_sends_a_failed_message_again_from_its_page(agent, client, django_capture_on_commit_callbacks):
    # given
    inbound = InboundMessageFactory(phone=PHONE, status=Status.HANDLED)
    failed = OutboundMessageFactory(
        phone=PHONE, in_reply_to=inbound, status=Status.FAILED, error_code="500", provider="console"
    )
    page = client.get(f"/admin/delivery/message/{failed.pk}/change/").content.decode()
    assert 'id="resend-form"' in page

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/delivery/message/{failed.pk}/resend/", follow=True)

    # then: a new message, sent through the usual path, and who asked is on both pages
    resent = Message.objects.exclude(pk__in=[inbound.pk, failed.pk]).get()
    assert (resent.body, resent.in_reply_to_id, resent.status) == (failed.body, inbound.pk, Status.SENT)
    assert Message.objects.get(pk=failed.pk).status == Status.FAILED
    assert response.redirect_chain[-1][0] == f"/admin/delivery/message/{resent.pk}/change/"
    assert f"Sent again as message #{resent.pk}" in response.content.decode()
    entries = LogEntry.objects.filter(user=agent).order_by("object_id")
    assert [(e.object_id, e.change_message) for e in entries] == [
        (str(failed.pk), f"Sent again as message #{resent.pk}."),
        (str(resent.pk), f"Sending again message #{failed.pk}."),
    ]
    original_page = client.get(f"/admin/delivery/message/{failed.pk}/change/").content.decode()
    assert f"Sent again as message #{resent.pk}. (support_agents)" in original_page


@pytest.mark.parametrize(
    "status, error_code, why",
    [
        (Status.REFUSED, "opted_out", "a refused message is never sent"),
        (Status.FAILED, "dlt_no_template", "a refused message is never sent"),
        (Status.DELIVERED, "", "only failed messages are sent again"),
        (Status.QUEUED, "", "only failed messages are sent again"),
    ],
)
def test_refused_and_unfailed_messages_are_never_sent_again(agent, client, status, error_code, why):
    message = OutboundMessageFactory(status=status, error_code=error_code, delivered_at=timezone.now())

    page = client.get(f"/admin/delivery/message/{message.pk}/change/").content.decode()
    response = client.post(f"/admin/delivery/message/{message.pk}/resend/", follow=True)

    assert 'id="resend-form"' not in page
    assert why in response.content.decode()
    assert Message.objects.count() == 1
    assert not LogEntry.objects.exists()


def test_an_inbound_message_is_not_sent_again(agent, client):
    inbound = InboundMessageFactory()
    response = client.post(f"/admin/delivery/message/{inbound.pk}/resend/", follow=True)
    assert "only outbound messages are sent again" in response.content.decode()


def test_a_number_that_opted_out_since_gets_a_refused_copy(agent, client):
    failed = OutboundMessageFactory(phone=PHONE, status=Status.FAILED, error_code="500", provider="console")
    Suppression.objects.create(phone=PHONE, shortcode=failed.shortcode, keyword="STOP")

    client.post(f"/admin/delivery/message/{failed.pk}/resend/")

    resent = Message.objects.exclude(pk=failed.pk).get()
    assert (resent.status, resent.error_code) == (Status.REFUSED, "opted_out")


@pytest.mark.parametrize("role", ["Business staff"])
def test_sending_again_needs_the_requeue_permission(db, client, role):
    client.force_login(user_in(role))
    failed = OutboundMessageFactory(status=Status.FAILED, error_code="500")

    page = client.get(f"/admin/delivery/message/{failed.pk}/change/").content.decode()
    response = client.post(f"/admin/delivery/message/{failed.pk}/resend/")

    assert 'id="resend-form"' not in page
    assert response.status_code == 403
    assert Message.objects.count() == 1


def test_the_message_page_links_to_its_conversation_by_id(agent, client):
    message = InboundMessageFactory(phone=PHONE)

    listing = client.get(MESSAGES).content.decode()
    page = client.get(f"/admin/delivery/message/{message.pk}/change/").content.decode()

    link = f"/admin/console/conversation/?message={message.pk}"
    assert link in listing and link in page
    assert json.dumps(PHONE) not in page


@pytest.mark.services
def test_a_huge_unfiltered_list_shows_the_postgres_estimate(agent, client, monkeypatch):
    from django.db import connection

    monkeypatch.setattr(BoundedCountPaginator, "COUNT_LIMIT", 20)
    messages_bulk_create(30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE delivery_message")

    unfiltered = client.get(MESSAGES).content.decode()
    filtered = client.get(MESSAGES, {"status__exact": "queued"}).content.decode()

    assert "about 30 messages" in unfiltered
    assert "more than 20 messages" in filtered

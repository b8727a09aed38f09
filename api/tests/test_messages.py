"""POST /api/v1/messages/ (every field, every refusal) and reading messages back."""

import datetime as dt

import pytest
from django.utils import timezone
from freezegun import freeze_time

from api.models import ClientMessage
from api.tests.factories import ApiClientFactory
from commands.tests.factories import ShortcodeFactory
from delivery.models import DeliveryReport, Message
from delivery.suppression import suppression_add
from templates.tests.factories import dlt_registration

pytestmark = pytest.mark.django_db

URL = "/api/v1/messages/"
PHONE = "+919876543210"


def send(api, **fields):
    body = {"to": PHONE, "shortcode": "57675", "text": "Your balance is Rs 120.", **fields}
    return api.post(URL, {k: v for k, v in body.items() if v is not None}, format="json")


# Sending --------------------------------------------------------------------------------


def test_a_text_is_accepted_stored_and_sent(api, api_client, django_capture_on_commit_callbacks):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = send(api, reference="inv-17")

    # then
    assert response.status_code == 202
    body = response.json()
    assert body == {"id": body["id"], "status": "queued", "encoding": "gsm7", "segments": 1, "reference": "inv-17"}
    message = Message.objects.get(id=body["id"])
    assert (message.phone, message.shortcode, message.body, message.reference) == (
        PHONE,
        "57675",
        "Your balance is Rs 120.",
        "inv-17",
    )
    assert message.status == "sent"  # the console provider took it
    assert ClientMessage.objects.get(message=message).client == api_client


@pytest.mark.parametrize(
    "to, stored",
    [
        ("+919876543210", "+919876543210"),
        ("9876543210", "+919876543210"),  # national, read in the shortcode's country (IN)
        ("09876543210", "+919876543210"),
        ("919876543210", "+919876543210"),
    ],
)
def test_numbers_are_read_in_the_shortcode_country(api, to, stored):
    response = send(api, to=to)

    assert response.status_code == 202
    assert Message.objects.get(id=response.json()["id"]).phone == stored


def test_a_unicode_text_reports_its_encoding_and_segments(api):
    response = send(api, text="नमस्ते " * 12)

    assert response.status_code == 202
    assert response.json()["encoding"] == "ucs2"
    assert response.json()["segments"] == 2


@pytest.mark.parametrize("reference", ["1107161000000000777", "Balance"])
def test_a_template_is_found_by_dlt_id_or_name_and_filled(api, shortcode, reference):
    # given
    shortcode.dlt_bound, shortcode.sender_id = True, "ACMEBK"
    shortcode.save()
    header = dlt_registration("Dear {#var#}, your balance is Rs {#numeric#}.", sender_id="ACMEBK")
    header.templates.update(dlt_template_id="1107161000000000777", name="Balance")

    # when
    response = send(api, text=None, template=reference, variables=["Asha", "120"])

    # then
    assert response.status_code == 202, response.json()
    message = Message.objects.get(id=response.json()["id"])
    assert message.body == "Dear Asha, your balance is Rs 120."
    assert message.dlt_template_id == "1107161000000000777"


# Field validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"to": None}, "to"),
        ({"to": ""}, "to"),
        ({"to": "1" * 33}, "to"),
        ({"shortcode": None}, "shortcode"),
        ({"shortcode": "5" * 16}, "shortcode"),
        ({"text": None}, "non_field_errors"),  # neither text nor template
        ({"template": "Balance"}, "non_field_errors"),  # both
        ({"text": "x" * 5001}, "text"),
        ({"variables": ["a"]}, "variables"),  # variables without a template
        ({"text": None, "template": "T", "variables": "Asha"}, "variables"),
        ({"text": None, "template": "T", "variables": [{"nested": 1}]}, "variables"),
        ({"text": None, "template": "T", "variables": ["x" * 501]}, "variables"),
        ({"text": None, "template": "T", "variables": [True]}, "variables"),
        ({"text": None, "template": "t" * 201}, "template"),
        ({"callback_url": "not a url"}, "callback_url"),
        ({"callback_url": "https://example.com/" + "x" * 500}, "callback_url"),
        ({"reference": "r" * 101}, "reference"),
        ({"text": "null \x00 byte"}, "text"),
        ({"to": ["+919876543210"]}, "to"),
        ({"to": 919876543210}, "to"),  # a number is not a string here (it is on /send-sms)
        ({"reference": 17}, "reference"),
        ({"shortcode": 57675}, "shortcode"),
        ({"text": True}, "text"),
    ],
)
def test_each_field_is_validated(api, fields, field):
    response = send(api, **fields)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert field in body["fields"], body
    assert body["detail"]
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"to=1", "application/x-www-form-urlencoded"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400_or_415(api, body, content_type):
    response = api.generic("POST", URL, body, content_type=content_type)

    assert response.status_code in (400, 415)
    assert response.json()["code"] in ("parse_error", "invalid", "unsupported_media_type")


# Refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["12345", "+1", "abc", "+91 98765"])
def test_an_invalid_number_is_refused(api, number):
    response = send(api, to=number)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_number"
    assert not Message.objects.exists()


@pytest.mark.parametrize("number", ["57676", "99999", ""])
def test_a_shortcode_not_given_to_the_client_is_refused(api, number):
    ShortcodeFactory(number="57676")

    response = send(api, shortcode=number or " ")

    assert response.status_code in (400, 403)
    assert response.json()["code"] in ("shortcode_not_allowed", "invalid")
    assert not Message.objects.exists()


def test_an_inactive_shortcode_is_refused(api, shortcode):
    shortcode.active = False
    shortcode.save()

    response = send(api)

    assert response.status_code == 403
    assert response.json()["code"] == "shortcode_not_allowed"


def test_a_text_over_the_segment_limit_is_refused_not_cut(api):
    response = send(api, text="x" * 400)  # 3 GSM-7 segments, the limit is 2

    assert response.status_code == 422
    assert response.json() | {"detail": ""} == {
        "code": "too_long",
        "detail": "",
        "segments": 3,
        "segment_limit": 2,
        "encoding": "gsm7",
    }
    assert not Message.objects.exists()


def test_a_suppressed_number_is_refused_and_the_refusal_kept(api):
    suppression_add(phone=PHONE, shortcode="57675", keyword="STOP")

    response = send(api)

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "suppressed"
    message = Message.objects.get(id=body["message_id"])
    assert (message.status, message.error_code) == ("refused", "opted_out")


def test_a_text_without_a_dlt_template_is_refused_with_the_nearest(api, shortcode):
    shortcode.dlt_bound, shortcode.sender_id = True, "ACMEBK"
    shortcode.save()
    dlt_registration("Dear {#var#}, your balance is Rs {#numeric#}.", sender_id="ACMEBK")

    response = send(api, text="Dear Asha, your balance is 120 rupees.")

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "dlt_no_template"
    assert body["nearest_template_id"]
    assert "balance" in body["detail"] or "template" in body["detail"]
    assert Message.objects.get(id=body["message_id"]).status == "refused"


@pytest.mark.parametrize(
    "template, variables, code",
    [
        ("No such template", ["Asha", "1"], "template_not_found"),
        ("Balance", ["Asha"], "template_values"),
        ("Balance", ["Asha", "not a number"], "template_values"),
    ],
)
def test_template_refusals(api, shortcode, template, variables, code):
    shortcode.dlt_bound, shortcode.sender_id = True, "ACMEBK"
    shortcode.save()
    header = dlt_registration("Dear {#var#}, your balance is Rs {#numeric#}.", sender_id="ACMEBK")
    header.templates.update(name="Balance")

    response = send(api, text=None, template=template, variables=variables)

    assert response.status_code == 422
    assert response.json()["code"] == code
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "url, code",
    [
        ("http://example.com/status", "callback_url_not_allowed"),  # not https
        ("https://10.0.0.7/status", "callback_url_not_allowed"),  # private
        ("https://localhost/status", "callback_url_not_allowed"),
        ("https://user:pw@example.com/status", "callback_url_not_allowed"),
        ("ftp://example.com/status", "callback_url_not_allowed"),
    ],
)
def test_callback_urls_must_be_public_https(api, url, code):
    response = send(api, callback_url=url)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not Message.objects.exists()


def test_a_callback_needs_the_client_secret_set(api, monkeypatch):
    monkeypatch.delenv("CALLBACK_SECRET_TESTS")

    response = send(api, callback_url="https://example.com/status")

    assert response.status_code == 422
    assert response.json()["code"] == "callback_secret_unset"


# Authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Token wrong", "Token", "Token a b", "Basic dXNlcjpwdw==", "Bearer wrong"],
)
def test_without_a_valid_token_nothing_is_sent(api, header):
    api.credentials(**({"HTTP_AUTHORIZATION": header} if header else {}))

    response = send(api)

    assert response.status_code == 401
    assert response.json()["code"] in ("not_authenticated", "authentication_failed")
    assert not Message.objects.exists()


def test_bearer_is_accepted_as_well(api, api_client):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_client.token}")

    assert send(api).status_code == 202


def test_a_deactivated_client_is_refused(api, api_client):
    api_client.active = False
    api_client.save()

    assert send(api).status_code == 401


# Reading back ---------------------------------------------------------------------------


def test_one_message_with_its_history(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        message_id = send(api, reference="inv-17").json()["id"]
    message = Message.objects.get(id=message_id)
    DeliveryReport.objects.create(
        message=message, provider="console", status="delivered", provider_status="DELIVRD", applied=True
    )
    Message.objects.filter(id=message_id).update(status="delivered", delivered_at=timezone.now())

    response = api.get(f"{URL}{message_id}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["to"], body["reference"]) == (message_id, "delivered", PHONE, "inv-17")
    assert [(change["status"], change["source"]) for change in body["history"]] == [
        ("queued", "smsgate"),
        ("sent", "smsgate"),
        ("delivered", "report"),
    ]
    assert body["history"][2]["provider_status"] == "DELIVRD"


def test_a_refused_message_history_says_so(api):
    suppression_add(phone=PHONE, shortcode="57675", keyword="STOP")
    message_id = send(api).json()["message_id"]

    history = api.get(f"{URL}{message_id}/").json()["history"]

    assert [(change["status"], change["error_code"]) for change in history] == [("refused", "opted_out")]


def test_another_clients_messages_are_not_found(api, shortcode):
    other = ApiClientFactory(shortcodes=[shortcode])
    theirs = send(api).json()["id"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {other.token}")

    assert api.get(f"{URL}{theirs}/").status_code == 404
    assert api.get(URL).json()["results"] == []
    for segment in ("999999", "³", "٣", "99999999999999999999999", "-1", "1.0", "%00"):
        response = api.get(f"{URL}{segment}/")
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), segment


@pytest.fixture
def three_messages(api):
    with freeze_time("2026-11-01T10:00:00Z"):
        first = send(api, reference="a").json()["id"]
    with freeze_time("2026-11-02T10:00:00Z"):
        second = send(api, reference="b", to="+919876500000").json()["id"]
    suppression_add(phone="+919876511111", shortcode="57675", keyword="STOP")
    with freeze_time("2026-11-03T10:00:00Z"):
        third = send(api, reference="c", to="+919876511111").json()["message_id"]
    return first, second, third


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", [2, 1, 0]),
        ("?phone=%2B919876500000", [1]),
        ("?phone=9876500000", [1]),
        ("?status=refused", [2]),
        ("?status=queued", [1, 0]),
        ("?reference=a", [0]),
        ("?created_after=2026-11-02T00:00:00Z", [2, 1]),
        ("?created_before=2026-11-02T00:00:00Z", [0]),
        ("?created_after=2026-11-02T00:00:00Z&created_before=2026-11-03T00:00:00Z", [1]),
        ("?reference=none", []),
    ],
)
def test_the_list_filters(api, three_messages, query, expected):
    response = api.get(URL + query)

    assert response.status_code == 200
    assert [m["id"] for m in response.json()["results"]] == [three_messages[i] for i in expected]


@pytest.mark.parametrize(
    "query, field",
    [
        ("?phone=12", "phone"),
        ("?status=nonsense", "status"),
        ("?created_after=yesterday", "created_after"),
        ("?batch=x", "batch"),
        ("?batch=0", "batch"),
    ],
)
def test_bad_filters_are_400(api, query, field):
    response = api.get(URL + query)

    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_the_list_pages_with_a_cursor(api, three_messages):
    first_page = api.get(URL + "?page_size=2").json()
    second_page = api.get(first_page["next"]).json()

    assert [m["id"] for m in first_page["results"]] == [three_messages[2], three_messages[1]]
    assert [m["id"] for m in second_page["results"]] == [three_messages[0]]
    assert second_page["next"] is None
    assert api.get(URL + "?cursor=garbage").status_code == 404


def test_created_filters_take_aware_times(api, three_messages):
    after = (dt.datetime(2026, 11, 2, 15, 31, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))).isoformat()

    response = api.get(URL, {"created_after": after})

    assert [m["id"] for m in response.json()["results"]] == [three_messages[2]]


def test_batch_messages_are_the_clients_and_filter_by_batch(api, api_client, shortcode):
    # given: a batch of this client with one message, and a single send
    from bulk.models import Batch, BatchRecipient
    from delivery.tests.factories import OutboundMessageFactory

    single = send(api).json()["id"]
    batch = Batch.objects.create(shortcode="57675", text="Hello", client_id=api_client.pk, total=1)
    in_batch = OutboundMessageFactory(shortcode="57675", phone="+919876500001")
    BatchRecipient.objects.create(batch=batch, phone=in_batch.phone, state="message", message=in_batch)
    other_batch = Batch.objects.create(shortcode="57675", text="Hello", client_id=api_client.pk + 1000, total=1)
    theirs = OutboundMessageFactory(shortcode="57675", phone="+919876500002")
    BatchRecipient.objects.create(batch=other_batch, phone=theirs.phone, state="message", message=theirs)

    # then
    assert [m["id"] for m in api.get(URL).json()["results"]] == [in_batch.id, single]
    assert [m["id"] for m in api.get(URL, {"batch": batch.id}).json()["results"]] == [in_batch.id]
    assert api.get(URL, {"batch": other_batch.id}).json()["results"] == []
    assert api.get(f"{URL}{in_batch.id}/").status_code == 200
    assert api.get(f"{URL}{theirs.id}/").status_code == 404


def test_with_debug_on_callbacks_may_go_to_a_local_http_receiver(api, settings):
    settings.DEBUG = True
    settings.CALLBACK_ALLOWED_ORIGINS = []

    assert send(api, callback_url="http://localhost:9000/status").status_code == 202

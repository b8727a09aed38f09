"""The batch endpoints: accept (202), progress, cancel; each client sees only its own batches."""

import json

import pytest
from rest_framework.test import APIClient

from api.tests.factories import ApiClientFactory
from bulk.models import Batch, BatchRecipient
from delivery.models import Message, Suppression
from templates.tests.factories import dlt_registration

pytestmark = pytest.mark.django_db

BATCHES = "/api/v1/batches/"


def post(api: APIClient, body: dict):
    return api.post(BATCHES, body, format="json")


def test_a_batch_is_accepted_with_its_counts_and_followed_to_the_end(
    api, api_client, django_capture_on_commit_callbacks
):
    Suppression.objects.create(phone="+919800000003", shortcode="57675", keyword="STOP")
    body = {
        "shortcode": "57675",
        "text": "Hi {name}, {offer}",
        "variables": {"offer": "10% off"},
        "recipients": [
            {"to": "+919800000001", "variables": {"name": "Asha"}, "reference": "c-1"},
            {"to": "9800000002", "variables": {"name": "Ravi", "offer": "15% off"}},
            {"to": "+919800000003", "variables": {"name": "Opted"}},
            {"to": "12345", "variables": {"name": "Nobody"}},
        ],
        "reference": "diwali",
    }
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api, body)
    # then
    assert response.status_code == 202, response.content
    answer = response.json()
    assert answer["state"] == "accepted"
    assert answer["reference"] == "diwali"
    assert (answer["total"], answer["progress"]["suppressed"], answer["progress"]["invalid"]) == (4, 1, 1)
    # the first tick sent both (the shortcode's 30 a second hold them)
    progress = api.get(f"{BATCHES}{answer['id']}/").json()
    assert progress["state"] == "running"
    assert (progress["progress"]["sent"], progress["progress"]["queued"]) == (2, 0)
    assert dict(Message.objects.values_list("phone", "body")) == {
        "+919800000001": "Hi Asha, 10% off",
        "+919800000002": "Hi Ravi, 15% off",
    }
    assert Message.objects.get(phone="+919800000001").reference == "c-1"
    assert Message.objects.get(phone="+919800000002").reference == "diwali"
    assert Batch.objects.get().client_id == api_client.pk


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "Hi", "recipients": []}, 400, "no_recipients"),
        ({"text": "Hi", "template": "x", "recipients": [{"to": "+919800000001"}]}, 400, "invalid"),
        ({"text": "Hi", "recipients": "+919800000001"}, 400, "invalid"),
        ({"text": "Hi", "recipients": [{"variables": {}}]}, 400, "invalid"),
        ({"text": "Hi", "recipients": [{"to": "+919800000001", "variables": {"a": {"b": 1}}}]}, 400, "invalid"),
        ({"text": "Hi", "recipients": [{"to": "+919800000001", "variables": ["x"]}]}, 400, "invalid"),
        ({"text": "Hi", "recipients": [{"to": True}]}, 400, "invalid"),
        ({"text": "Hi", "recipients": [{"to": 919800000001}]}, 400, "invalid"),
        ({"text": "Hi", "recipients": ["+919800000001"]}, 400, "invalid"),
        ({"text": "Hi", "recipients": [{"to": "+919800000001", "variables": {"n": 1}}]}, 400, "invalid"),
        ({"text": "Hi", "recipients": [{"to": "+919800000001", "phone": "x"}]}, 400, "invalid"),
        ({"text": "Hi", "recipients": [{"to": "+919800000001"}] * 6}, 400, "invalid"),
        ({"text": "Hi", "shortcode": "99999", "recipients": [{"to": "+919800000001"}]}, 403, "shortcode_not_allowed"),
        ({"template": "nope", "recipients": [{"to": "+919800000001"}]}, 422, "template_not_found"),
        ({"text": "Hi {name}", "recipients": [{"to": "+919800000001"}]}, 422, "nothing_to_send"),
        ({"text": "Hi", "recipients": [{"to": "+919800000001"}], "callback_url": "http://10.0.0.1/"}, 400,
         "callback_url_not_allowed"),
    ],
)  # fmt: skip
def test_a_batch_that_cannot_be_sent_is_refused_with_a_code_and_nothing_is_stored(api, settings, body, status, code):
    settings.BULK_MAX_RECIPIENTS = 5
    response = post(api, {"shortcode": "57675", **body})
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert not Batch.objects.exists()


def test_a_dlt_bound_text_with_no_template_is_refused_with_the_nearest(api, shortcode):
    dlt_registration("Hi {#var#}, your order has shipped.", sender_id="SMSGTE")
    shortcode.dlt_bound, shortcode.sender_id = True, "SMSGTE"
    shortcode.save()
    response = post(
        api, {"shortcode": "57675", "text": "Hi there, your order is late.", "recipients": [{"to": "9800000001"}]}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "dlt_no_template"
    assert response.json()["nearest_template_id"]


def test_ten_thousand_recipients_in_one_request_are_accepted(api, django_assert_max_num_queries):
    body = {
        "shortcode": "57675",
        "text": "Hi {name}",
        "recipients": [{"to": f"+9198{n:08d}", "variables": {"name": f"n{n}"}} for n in range(10_000)],
    }
    # Authentication, throttling and the client's shortcode, then batch_create's bounded inserts
    # (see bulk/tests/test_batches.py), never one query per recipient.
    with django_assert_max_num_queries(100):
        response = post(api, body)
    assert response.status_code == 202
    assert response.json()["total"] == 10_000
    assert BatchRecipient.objects.filter(state="pending").count() == 10_000


def test_a_client_sees_and_cancels_only_its_own_batches(api, shortcode):
    other = ApiClientFactory(shortcodes=[shortcode])
    other_api = APIClient()
    other_api.credentials(HTTP_AUTHORIZATION=f"Token {other.token}")
    batch_id = post(
        api, {"shortcode": "57675", "text": "Hi", "recipients": [{"to": "+919800000001"}, {"to": "+919800000002"}]}
    ).json()["id"]
    # then: another client cannot see it nor cancel it
    assert other_api.get(f"{BATCHES}{batch_id}/").status_code == 404
    assert other_api.post(f"{BATCHES}{batch_id}/cancel/").status_code == 404
    assert APIClient().get(f"{BATCHES}{batch_id}/").status_code == 401
    assert api.get(f"{BATCHES}abc/").json()["code"] == "not_found"
    # when: its own client cancels it
    response = api.post(f"{BATCHES}{batch_id}/cancel/")
    # then
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert response.json()["progress"]["cancelled"] == 2
    again = api.post(f"{BATCHES}{batch_id}/cancel/")
    assert (again.status_code, again.json()["code"]) == (409, "batch_finished")


def test_a_malformed_body_is_a_400_not_a_500(api):
    response = api.generic("POST", BATCHES, "{not json", content_type="application/json")
    assert response.status_code == 400
    response = api.generic("POST", BATCHES, json.dumps([1, 2]), content_type="application/json")
    assert response.status_code == 400


def test_the_schema_documents_the_batch_endpoints(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert {"/api/v1/batches/", "/api/v1/batches/{batch_id}/", "/api/v1/batches/{batch_id}/cancel/"} <= set(
        schema["paths"]
    )
    operation = schema["paths"]["/api/v1/batches/"]["post"]
    assert operation["operationId"] == "batch_create"
    assert "202" in operation["responses"]


@pytest.mark.parametrize("second_body_differs, status_code", [(False, 202), (True, 409)])
def test_a_retried_batch_with_its_idempotency_key_creates_no_second_batch(
    api, second_body_differs, status_code, django_capture_on_commit_callbacks
):
    # given: a batch accepted under an Idempotency-Key
    body = {"shortcode": "57675", "text": "Sale today", "recipients": [{"to": "+919800000001"}]}
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(BATCHES, body, format="json", headers={"Idempotency-Key": "upload-7"})

    # when: the same key comes again, with the same body or another
    again = {**body, "text": "Sale tomorrow"} if second_body_differs else body
    with django_capture_on_commit_callbacks(execute=True):
        second = api.post(BATCHES, again, format="json", headers={"Idempotency-Key": "upload-7"})

    # then
    assert first.status_code == 202
    assert second.status_code == status_code
    if status_code == 202:
        assert second.json() == first.json()
        assert second["Idempotent-Replayed"] == "true"
    else:
        assert second.json()["code"] == "idempotency_key_reused"
    assert Batch.objects.count() == 1
    assert Message.objects.count() == 1


@pytest.mark.parametrize("batch_id", ["³", "٣", "9" * 40, "-1", "1.0", "abc"])
@pytest.mark.parametrize("suffix", ["", "cancel/"])
def test_an_id_that_is_no_batch_is_a_404(api, batch_id, suffix):
    response = api.post(f"{BATCHES}{batch_id}/{suffix}") if suffix else api.get(f"{BATCHES}{batch_id}/")

    assert response.status_code == 404

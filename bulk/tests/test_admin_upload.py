"""Batches in the admin: a CSV upload creates one, the list shows progress, an action cancels."""

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from bulk.models import Batch
from bulk.services import RecipientInput, batch_create
from commands.tests.factories import ShortcodeFactory
from delivery.models import Message

pytestmark = pytest.mark.django_db

UPLOAD = "/admin/bulk/batch/upload/"
# The batch list's queries, whatever the number of batches on its page.
PROGRESS_LIST_QUERIES = 7


@pytest.fixture
def shortcode():
    return ShortcodeFactory(number="57675", max_mps=100)


@pytest.fixture
def staff(django_user_model):
    """A staff user with the given bulk permissions (codenames)."""

    def make(*codenames: str):
        user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=["view_batch", *codenames]))
        return user

    return make


def csv_file(content: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("recipients.csv", content.encode(), content_type="text/csv")


@pytest.mark.parametrize(
    "content",
    [
        "phone,name,reference\n+919800000001,Asha,r-1\n09800000002,Ravi,r-2\nnot a number,Nobody,r-3\n",
        "\ufeffTo;name;Reference\r\n919800000001;Asha;r-1\r\n9800000002;Ravi;r-2\r\n12;Nobody;r-3\r\n\r\n",
    ],
    ids=["comma", "excel-semicolon-bom"],
)
def test_a_csv_upload_creates_a_batch_with_each_rows_variables(admin_client, shortcode, content):
    # when
    response = admin_client.post(
        UPLOAD, {"shortcode": shortcode.id, "text": "Hi {name}, offer inside", "file": csv_file(content)}
    )
    # then
    batch = Batch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:bulk_batch_change", args=[batch.id])
    rows = list(batch.recipients.values_list("phone", "state", "variables", "reference"))
    assert rows[:2] == [
        ("+919800000001", "pending", {"name": "Asha"}, "r-1"),
        ("+919800000002", "pending", {"name": "Ravi"}, "r-2"),
    ]
    assert rows[2][1] == "invalid"
    assert batch.client_name == "admin"


@pytest.mark.parametrize(
    ("fields", "content", "shown"),
    [
        ({"text": "Hi"}, "name,city\nAsha,Pune\n", "No number column"),
        ({"text": "Hi {name}"}, "phone\n+919800000001\n", "No recipient of this batch can be sent to."),
        ({"text": "", "template": ""}, "phone\n+919800000001\n", "Give either a text or a template"),
    ],
)
def test_an_upload_that_cannot_be_sent_says_why_and_stores_nothing(admin_client, shortcode, fields, content, shown):
    response = admin_client.post(UPLOAD, {"shortcode": shortcode.id, **fields, "file": csv_file(content)})
    assert response.status_code == 200
    assert shown in response.content.decode()
    assert not Batch.objects.exists()


def test_the_batch_list_shows_progress_and_an_action_cancels(
    admin_client, shortcode, django_capture_on_commit_callbacks
):
    # given: a batch with its first tick sent, one invalid number
    with django_capture_on_commit_callbacks(execute=True):
        batch = batch_create(
            shortcode=shortcode,
            text="Hi",
            recipients=[RecipientInput(to=f"+9198000000{n:02d}") for n in range(90)] + [RecipientInput(to="bad")],
        )
    # when
    page = admin_client.get("/admin/bulk/batch/")
    # then: 80 a second went out (100 less the reply reserve), 10 wait, 1 skipped
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="upload-batch"' in html
    row = html[html.index(f">{batch.id}</a>") :]
    cells = [cell.split(">")[-1] for cell in row.split("</td>")[:9]]
    assert cells[:8] == ["57675", "running", "91", "10", "80", "0", "0", "0"]
    # when: it is cancelled
    response = admin_client.post(
        "/admin/bulk/batch/", {"action": "cancel_selected", "_selected_action": [batch.id]}, follow=True
    )
    # then
    assert "1 batch cancelled." in response.content.decode()
    batch.refresh_from_db()
    assert batch.state == "cancelled"
    assert batch.recipients.filter(state="cancelled").count() == 10
    assert Message.objects.count() == 80


@pytest.mark.parametrize("batches", [1, 20])
def test_the_batch_list_counts_progress_for_its_page_in_one_query(
    admin_client, shortcode, batches, django_assert_num_queries
):
    # given
    for _ in range(batches):
        batch_create(shortcode=shortcode, text="Hi", recipients=[RecipientInput(to="+919800000001")])
    admin_client.get("/admin/bulk/batch/")  # the session and permissions, cached by the first page
    # then: the same queries for one batch as for twenty
    with django_assert_num_queries(PROGRESS_LIST_QUERIES):
        page = admin_client.get("/admin/bulk/batch/")
    assert page.status_code == 200


def test_uploading_and_cancelling_need_their_permissions(client, shortcode, staff):
    # given: staff who may only look at batches
    client.force_login(staff())
    batch = batch_create(shortcode=shortcode, text="Hi", recipients=[RecipientInput(to="+919800000001")])
    # then
    page = client.get("/admin/bulk/batch/")
    assert page.status_code == 200
    assert 'id="upload-batch"' not in page.content.decode()
    assert 'value="cancel_selected"' not in page.content.decode()
    assert client.get(UPLOAD).status_code == 403
    client.post("/admin/bulk/batch/", {"action": "cancel_selected", "_selected_action": [batch.id]})
    batch.refresh_from_db()
    assert batch.state == "accepted"


def test_an_upload_permission_opens_the_form(client, shortcode, staff):
    client.force_login(staff("add_batch"))
    page = client.get(UPLOAD)
    assert page.status_code == 200
    assert 'id="batch-upload"' in page.content.decode()


def test_recipient_numbers_are_masked_without_the_full_numbers_permission(client, shortcode, staff):
    client.force_login(staff("view_batchrecipient"))
    batch_create(shortcode=shortcode, text="Hi", recipients=[RecipientInput(to="+919876543210")])
    html = client.get("/admin/bulk/batchrecipient/").content.decode()
    assert "+91******3210" in html
    assert "9876543210" not in html

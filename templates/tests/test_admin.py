"""The admin: template list, the "test a message" page, CSV import with preview and confirmation."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from templates.models import Template
from templates.tests.factories import HeaderFactory, TemplateFactory

EXPORT = Path(__file__).parent / "fixtures" / "dlt_export.csv"
TEST_URL = reverse("admin:templates_template_test")
IMPORT_URL = reverse("admin:templates_template_import")


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("boss", "boss@example.com", "pw")


@pytest.fixture
def viewer(db):
    """A support agent: may look at templates, not change them."""
    user = User.objects.create_user("agent", "agent@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_template", "view_header"]))
    return user


@pytest.fixture
def otp(db):
    header = HeaderFactory(sender_id="ACMEBK")
    return TemplateFactory(
        entity=header.entity,
        headers=[header],
        dlt_template_id="1107161000000000001",
        name="OTP",
        content="Dear {#var#}, your OTP is {#numeric#}. - ACME",
    )


def upload():
    return SimpleUploadedFile("export.csv", EXPORT.read_bytes(), content_type="text/csv")


@pytest.mark.django_db
def test_changelist_searches_by_exact_dlt_id_and_content(client, superuser, otp):
    # given
    TemplateFactory(dlt_template_id="1107161000000000002", content="Your parcel {#var#} is on its way.")
    client.force_login(superuser)
    url = reverse("admin:templates_template_changelist")

    # when
    by_id = client.get(url, {"q": "1107161000000000001"})
    by_partial_id = client.get(url, {"q": "110716100000000000"})
    by_content = client.get(url, {"q": "parcel"})

    # then
    assert [t.pk for t in by_id.context["cl"].result_list] == [otp.pk]
    assert list(by_partial_id.context["cl"].result_list) == []
    assert [t.dlt_template_id for t in by_content.context["cl"].result_list] == ["1107161000000000002"]
    assert TEST_URL in by_id.content.decode()
    assert IMPORT_URL in by_id.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("user", ["superuser", "viewer"])
def test_test_page_shows_the_match_and_values(client, request, otp, user):
    # given
    client.force_login(request.getfixturevalue(user))

    # when
    response = client.get(TEST_URL, {"header": "ACMEBK", "text": "Dear Ram, your OTP is 4821. - ACME"})

    # then
    assert response.status_code == 200
    assert response.context["resolution"].matched
    html = response.content.decode()
    assert "1107161000000000001" in html
    assert '<code class="dlt-value">Ram</code>' in html
    assert '<code class="dlt-value">4821</code>' in html


@pytest.mark.django_db
def test_test_page_explains_a_miss_and_keeps_spaces(client, superuser, otp):
    # given
    client.force_login(superuser)

    # when: a trailing space, which a stripping form field would hide
    response = client.get(TEST_URL, {"header": "ACMEBK", "text": "Dear Ram, your OTP is 4821. - ACME "})

    # then
    resolution = response.context["resolution"]
    assert not resolution.matched
    assert "the template ends here but the text goes on with ' '" in resolution.why
    assert "No template matches" in response.content.decode()
    assert "Nearest: 1107161000000000001" in response.content.decode()


@pytest.mark.django_db
def test_import_previews_then_saves_on_confirmation(client, superuser):
    # given
    client.force_login(superuser)

    # when: upload
    preview = client.post(IMPORT_URL, {"file": upload()})

    # then: every row with its outcome, nothing saved
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "Dry run, nothing saved: would be 5 created, 0 updated, 6 rejected." in html
    assert "duplicate: template 1107161000000000001 is already on line 2" in html
    assert "unknown category &#x27;Marketing&#x27;" in html
    assert not Template.objects.exists()

    # when: confirm
    payload = preview.context["confirm_form"].initial["payload"]
    done = client.post(IMPORT_URL, {"payload": payload, "confirm": "Confirm import"})

    # then
    assert done.status_code == 200
    assert "5 created, 0 updated, 6 rejected." in done.content.decode()
    assert Template.objects.count() == 5


@pytest.mark.django_db
def test_import_refuses_a_tampered_preview(client, superuser):
    # given
    client.force_login(superuser)
    payload = client.post(IMPORT_URL, {"file": upload()}).context["confirm_form"].initial["payload"]

    # when
    response = client.post(IMPORT_URL, {"payload": payload[:-2] + "xx", "confirm": "1"})

    # then
    assert "The preview was altered" in response.content.decode()
    assert not Template.objects.exists()


@pytest.mark.django_db
def test_import_shows_a_file_error(client, superuser):
    # given
    client.force_login(superuser)
    bad = SimpleUploadedFile("x.csv", b"Template ID,Name\n1,2\n", content_type="text/csv")

    # when
    response = client.post(IMPORT_URL, {"file": bad})

    # then
    assert "Missing column(s)" in response.content.decode()
    assert not Template.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_view_only_users_may_not_import(client, viewer, method):
    # given
    client.force_login(viewer)

    # when
    response = getattr(client, method)(IMPORT_URL, {"file": upload()} if method == "post" else None)
    changelist = client.get(reverse("admin:templates_template_changelist"))

    # then
    assert response.status_code == 403
    assert not Template.objects.exists()
    assert IMPORT_URL not in changelist.content.decode()


@pytest.mark.django_db
def test_admin_form_refuses_a_header_of_the_wrong_category(client, superuser, otp):
    # given
    client.force_login(superuser)
    promo = HeaderFactory(entity=otp.entity, sender_id="654321", category="promotional")
    url = reverse("admin:templates_template_change", args=[otp.pk])

    # when
    response = client.post(
        url,
        {
            "dlt_template_id": otp.dlt_template_id,
            "name": otp.name,
            "entity": otp.entity.pk,
            "category": "transactional",
            "status": "approved",
            "content": otp.content,
            "headers": [promo.pk],
        },
    )

    # then
    assert response.status_code == 200
    assert "Header 654321 is promotional" in response.content.decode()

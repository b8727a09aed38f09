"""The send form: who may use it, what its preview says, what it sends and what it refuses."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from commands.tests.factories import ShortcodeFactory
from delivery.models import Message, Suppression
from delivery.statuses import Status
from templates.models import Template
from templates.tests.factories import dlt_registration

pytestmark = pytest.mark.django_db

URL = "/admin/console/send/"
BALANCE = "Your balance is Rs {#numeric#}. Thank you for banking with ACME."


@pytest.fixture
def dlt_shortcode():
    """An Indian shortcode sending as ACMEIN, with one approved template."""
    dlt_registration(BALANCE, sender_id="ACMEIN")
    return ShortcodeFactory(number="57675", name="Bank", dlt_bound=True, sender_id="ACMEIN", provider="console")


@pytest.fixture
def plain_shortcode():
    return ShortcodeFactory(number="57676", name="Info", dlt_bound=False, country="GB", provider="console")


@pytest.fixture
def sender(client):
    user = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="delivery", codename="add_message"))
    client.force_login(user)
    return user


def post(client, shortcode, *, button="send", **fields):
    data = {"shortcode": shortcode.pk, "phone": "+919876543210", "template": "", "text": "", button: "1", **fields}
    return client.post(URL, data)


# Who may use it ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "permission, status_code",
    [("delivery.add_message", 200), ("delivery.view_message", 403), (None, 403)],
)
def test_only_staff_who_may_add_messages_open_the_form(client, permission, status_code):
    user = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    if permission:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client.force_login(user)

    assert client.get(URL).status_code == status_code


def test_an_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_user_without_the_permission_cannot_send_by_posting(client, plain_shortcode):
    user = get_user_model().objects.create_user("agent", "agent@example.com", "pw", is_staff=True)
    client.force_login(user)

    response = post(client, plain_shortcode, phone="+447911123456", text="hello")

    assert response.status_code == 403
    assert not Message.objects.exists()


# Preview -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, encoding, segments",
    [
        ("Hello there", "GSM-7", "1 (at most 4)"),
        ("x" * 161, "GSM-7", "2 (at most 4)"),
        ("नमस्ते, आपका बैलेंस", "UCS-2", "1 (at most 4)"),
        ("Price: 5€ [ok]", "GSM-7", "1 (at most 4)"),
    ],
)
def test_preview_shows_encoding_and_segments_and_stores_nothing(
    client, sender, plain_shortcode, text, encoding, segments
):
    response = post(client, plain_shortcode, button="preview", phone="07911 123456", text=text)

    assert response.status_code == 200
    preview = response.context["preview"]
    assert preview.phone == "+447911123456"  # national, read in the shortcode's country (GB)
    html = response.text
    assert encoding in html and f"<td>{segments}</td>" in html
    assert "not DLT-bound" in html
    assert not Message.objects.exists()


def test_preview_names_the_matching_dlt_template_and_its_values(client, sender, dlt_shortcode):
    text = "Your balance is Rs 1200. Thank you for banking with ACME."

    response = post(client, dlt_shortcode, button="preview", text=text)

    resolution = response.context["preview"].resolution
    assert resolution.matched and resolution.values == ["1200"]
    assert f"matches template <strong>{resolution.template_id}</strong>" in response.text
    assert not Message.objects.exists()


def test_preview_of_an_opted_out_number_says_so(client, sender, plain_shortcode):
    Suppression.objects.create(phone="+447911123456", shortcode="57676", keyword="STOP")

    response = post(client, plain_shortcode, button="preview", phone="+447911123456", text="hello")

    assert "opted out (STOP)" in response.text
    assert response.context["preview"].refusals


# Send --------------------------------------------------------------------------------


def test_a_matching_text_is_sent_as_a_reply_would_be(client, sender, dlt_shortcode, django_capture_on_commit_callbacks):
    text = "Your balance is Rs 1200. Thank you for banking with ACME."

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, dlt_shortcode, phone="9876543210", text=text)

    assert response.status_code == 302 and response["Location"] == URL
    message = Message.objects.get()
    assert (message.direction, message.shortcode, message.phone, message.body) == (
        "out",
        "57675",
        "+919876543210",
        text,
    )
    assert message.status == Status.SENT  # through the console provider
    assert message.provider == "console" and message.dlt_template_id
    assert message.provider_options["sender"] == "ACMEIN"
    assert message.provider_options["send_rules"]["dlt_header"] == "ACMEIN"
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.object_id) == (sender.pk, str(message.pk))
    page = client.get(URL)
    assert f"Message {message.pk}</a> to +919876543210 is" in page.text


def test_a_text_matching_no_template_is_refused_with_the_nearest_template(client, sender, dlt_shortcode):
    response = post(client, dlt_shortcode, text="Your balance is Rs 1200. Thanks for banking with ACME.")

    assert response.status_code == 200
    assert not Message.objects.exists()
    html = response.text
    assert "Not sent" in html and "no template matches" in html
    assert 'id="preview-nearest"' in html and "Thank you for banking with ACME." in html


def test_a_text_over_the_segment_limit_is_refused(client, sender, plain_shortcode):
    plain_shortcode.segment_limit = 1
    plain_shortcode.save()

    response = post(client, plain_shortcode, phone="+447911123456", text="x" * 161)

    assert "sends at most 1" in response.text
    assert not Message.objects.exists()


def test_an_opted_out_number_is_refused(client, sender, plain_shortcode):
    Suppression.objects.create(phone="+447911123456", shortcode="", keyword="STOPALL")

    response = post(client, plain_shortcode, phone="+447911123456", text="hello")

    assert "Not sent" in response.text and "opted out (STOPALL)" in response.text
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "fields, field, error",
    [
        ({"phone": "12"}, "phone", "not a valid phone number"),
        ({"phone": "+447911123456", "text": "   "}, "text", "Type the text, or choose a template."),
        ({"phone": ""}, "phone", "This field is required."),
    ],
)
def test_bad_input_is_a_form_error_not_a_send(client, sender, plain_shortcode, fields, field, error):
    response = post(client, plain_shortcode, **{"text": "hello", **fields})

    assert response.status_code == 200
    assert any(error in e for e in response.context["form"].errors[field])
    assert not Message.objects.exists()


def test_an_unknown_shortcode_is_a_form_error(client, sender, plain_shortcode):
    response = client.post(URL, {"shortcode": "999999", "phone": "+447911123456", "text": "hi", "send": "1"})

    assert response.status_code == 200
    assert "shortcode" in response.context["form"].errors


# Templates ---------------------------------------------------------------------------


def test_a_template_is_chosen_then_filled_in_then_sent(
    client, sender, dlt_shortcode, django_capture_on_commit_callbacks
):
    template_id = Template.objects.get().dlt_template_id

    # given: the template chosen, its value fields appear
    first = post(client, dlt_shortcode, button="preview", template=template_id)
    assert "value_1" in first.context["form"].fields
    assert "Fill in the template&#x27;s values" in first.text

    # when: filled in and previewed
    second = post(client, dlt_shortcode, button="preview", template=template_id, value_1="250")
    assert second.context["preview"].text == "Your balance is Rs 250. Thank you for banking with ACME."
    assert second.context["preview"].resolution.template_id == template_id

    # then: sent with that text
    with django_capture_on_commit_callbacks(execute=True):
        post(client, dlt_shortcode, template=template_id, value_1="250")
    message = Message.objects.get()
    assert message.body == "Your balance is Rs 250. Thank you for banking with ACME."
    assert message.dlt_template_id == template_id


@pytest.mark.parametrize(
    "values, error",
    [
        ({"value_1": "abc"}, "digits"),  # {#numeric#} takes digits only
        ({"value_1": "250", "text": "also text"}, "Leave the text empty"),
    ],
)
def test_template_values_that_do_not_fit_are_refused(client, sender, dlt_shortcode, values, error):
    template_id = Template.objects.get().dlt_template_id

    response = post(client, dlt_shortcode, template=template_id, **values)

    assert response.status_code == 200
    assert error in response.text
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "other_shortcode_sends_it, error",
    [
        (True, "is not registered for 57675"),  # listed for the other shortcode, refused for this one
        (False, "Select a valid choice"),  # no shortcode sends as that header: not even listed
    ],
)
def test_a_template_of_another_header_cannot_be_sent_from_the_shortcode(
    client, sender, dlt_shortcode, other_shortcode_sends_it, error
):
    other = dlt_registration("Your OTP is {#numeric#}. - OTHER", sender_id="OTHERS").templates.get()
    if other_shortcode_sends_it:
        ShortcodeFactory(number="57677", dlt_bound=True, sender_id="OTHERS")

    response = post(client, dlt_shortcode, template=other.dlt_template_id, value_1="1234")

    assert error in response.text
    assert not Message.objects.exists()

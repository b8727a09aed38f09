"""The send form and the dashboard in a real browser: headless Chromium against the live server."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from commands.tests.factories import ShortcodeFactory
from conftest import wait_until
from delivery.models import Message
from delivery.statuses import Status
from delivery.tests.factories import InboundMessageFactory, OutboundMessageFactory
from templates.models import Template
from templates.tests.factories import dlt_registration

pytestmark = pytest.mark.django_db(transaction=True)

BALANCE = "Your balance is Rs {#numeric#}. Thank you for banking with ACME."


@pytest.fixture
def staff_sender():
    user = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    for codename in ("add_message", "view_message"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="delivery", codename=codename))
    return user


def fill_and_send(browser, *, shortcode, phone: str, text: str) -> None:
    Select(browser.find_element(By.NAME, "shortcode")).select_by_value(str(shortcode.pk))
    phone_input = browser.find_element(By.NAME, "phone")
    phone_input.clear()
    phone_input.send_keys(phone)
    text_input = browser.find_element(By.NAME, "text")
    text_input.clear()
    text_input.send_keys(text)
    browser.find_element(By.CSS_SELECTOR, "input[name=send]").click()


def test_the_send_form_refuses_a_text_no_template_matches_then_sends_one_that_does(browser, staff_sender):
    dlt_registration(BALANCE, sender_id="ACMEIN")
    template_id = Template.objects.get().dlt_template_id
    shortcode = ShortcodeFactory(number="57675", name="Bank", dlt_bound=True, sender_id="ACMEIN", provider="console")
    browser.login(staff_sender)

    # A text that departs from the template: refused, the nearest template shown, nothing stored.
    browser.go("/admin/console/send/")
    fill_and_send(browser, shortcode=shortcode, phone="9876543210", text="Your balance is Rs 99. Thanks, ACME.")
    nearest = browser.wait_for("#preview-nearest")
    assert template_id in nearest.text and "Thank you for banking with ACME." in nearest.text
    assert "no template matches" in browser.find_element(By.ID, "preview-dlt").text
    assert "Not sent" in browser.find_element(By.ID, "content-main").text
    assert not Message.objects.exists()

    # The same form, the text corrected: sent through the console provider.
    fill_and_send(
        browser, shortcode=shortcode, phone="9876543210", text="Your balance is Rs 99. Thank you for banking with ACME."
    )
    success = browser.wait_for("ul.messagelist li.success")
    message = Message.objects.get()
    assert f"Message {message.pk}" in success.text
    wait_until(lambda: Message.objects.get().status == Status.SENT, what="the console provider to send it")
    message.refresh_from_db()
    assert (message.phone, message.provider, message.dlt_template_id) == ("+919876543210", "console", template_id)


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)])
def test_the_dashboard_and_the_send_form_fit_the_screen(browser, staff_sender, width, height):
    ShortcodeFactory(number="57675", provider="console")
    InboundMessageFactory(status=Status.HANDLED)
    OutboundMessageFactory(status=Status.FAILED, error_code="timeout")
    browser.login(staff_sender)
    browser.set_window_size(width, height)

    for path, landmark in (("/admin/", "#console-dashboard svg"), ("/admin/console/send/", "#send-form")):
        browser.go(path)
        browser.wait_for(landmark)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px"
    browser.go("/admin/")
    assert "timeout" in browser.find_element(By.ID, "panel-failures").text

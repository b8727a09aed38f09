"""
A new member of staff sets up an Indian shortcode in a real browser, and an SMS gets its reply.

DLT templates arrive as the portal's export would bring them (factories here); the header,
the shortcode and its command are created through the admin's own pages.
"""

import pytest
import requests
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from commands.handlers import UNAVAILABLE_REPLY
from commands.models import Command, Shortcode
from conftest import WEBHOOK_SECRET, wait_until
from delivery.models import Message
from delivery.statuses import Direction
from templates.models import Header
from templates.tests.factories import PrincipalEntityFactory, TemplateFactory

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "+919876543210"
NUMBER = "56767"
HEADER = "ACMEBK"
HOURS = "Our branches are open 9 to 5, Monday to Saturday."
# The shortcode's own texts as a new one starts with them.
NEUTRAL_TEXTS = (
    "Reply with a code from the menu.",
    "Sorry, we did not understand that. Reply with a code from the menu.",
    "Reply with a code from the menu. Reply STOP to opt out.",
    "You have been unsubscribed and will receive no more messages. Reply START to resubscribe.",
    "You are subscribed again. Reply HELP for help.",
)


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")


def fill(browser, name: str, value: str):
    field = browser.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def save(browser):
    browser.find_element(By.NAME, "_save").click()


def header_created_in_the_admin(browser, entity):
    browser.go("/admin/templates/header/add/")
    fill(browser, "sender_id", HEADER)
    Select(browser.find_element(By.NAME, "entity")).select_by_value(str(entity.pk))
    Select(browser.find_element(By.NAME, "category")).select_by_value(Header.Category.SERVICE)
    save(browser)
    browser.wait_for("ul.messagelist")
    return Header.objects.get(sender_id=HEADER)


def indian_shortcode_form(browser, *, header: str):
    browser.go("/admin/commands/shortcode/add/")
    fill(browser, "number", NUMBER)
    fill(browser, "name", "Acme Bank")
    fill(browser, "country", "IN")
    # DLT by country (IN): the header choice shows, the free sender ID hides.
    assert browser.find_element(By.CSS_SELECTOR, ".field-dlt_header").is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, ".field-sender_id").is_displayed()
    Select(browser.find_element(By.NAME, "dlt_header")).select_by_value(header)
    save(browser)


def test_staff_set_up_an_indian_shortcode_and_an_sms_gets_its_reply(browser, staff, live_server):
    # given: a brand's DLT registration, whose templates come from the portal's export
    entity = PrincipalEntityFactory(name="Acme Bank")
    browser.login(staff)
    header = header_created_in_the_admin(browser, entity)
    for content in (*NEUTRAL_TEXTS, UNAVAILABLE_REPLY, HOURS):
        TemplateFactory(entity=entity, category="service_implicit", content=content, headers=[header])

    # when: staff create the shortcode with that header, then a command
    indian_shortcode_form(browser, header=HEADER)
    browser.wait_for("ul.messagelist")
    shortcode = Shortcode.objects.get(number=NUMBER)
    assert shortcode.requires_dlt and shortcode.sender_id == HEADER
    browser.go("/admin/commands/command/add/")
    Select(browser.find_element(By.NAME, "shortcode")).select_by_value(str(shortcode.pk))
    fill(browser, "code", "1")
    fill(browser, "name", "Branch hours")
    Select(browser.find_element(By.NAME, "handler_key")).select_by_value("reply")
    fill(browser, "config", f'{{"text": "{HOURS}"}}')
    save(browser)
    browser.wait_for("ul.messagelist")
    assert Command.objects.filter(shortcode=shortcode, code="1").exists()

    # then: the shortcode page says the command's reply passes DLT, and shows the webhook URL
    browser.go(f"/admin/commands/shortcode/{shortcode.pk}/change/")
    row = browser.find_element(By.XPATH, "//div[@id='reply-checks']//tr[contains(., 'command 1')]")
    assert row.find_element(By.CSS_SELECTOR, ".passes-yes").text == "yes"
    assert "/webhooks/generic/inbound/" in browser.find_element(By.ID, "webhook-urls").text

    # when: an SMS arrives for it
    response = requests.post(
        f"{live_server.url}/webhooks/generic/inbound/",
        json={"from": PHONE, "to": NUMBER, "body": "1", "id": "in-1"},
        headers={"X-Webhook-Secret": WEBHOOK_SECRET},
        timeout=10,
    )
    assert response.status_code == 200, response.text

    # then: the reply went out under the header, and the conversation page shows it
    wait_until(
        lambda: Message.objects.filter(direction=Direction.OUTBOUND, phone=PHONE, body=HOURS, status="sent").exists(),
        what="the reply to be sent",
    )
    reply = Message.objects.get(direction=Direction.OUTBOUND, phone=PHONE)
    assert reply.dlt_template_id
    browser.go(f"/admin/console/conversation/?phone={PHONE.replace('+', '%2B')}")
    browser.wait_for("#content")
    assert HOURS in browser.find_element(By.ID, "content").text


def test_the_form_refuses_a_dlt_bound_shortcode_without_templates_and_says_why(browser, staff):
    # given: a header with no approved template yet
    entity = PrincipalEntityFactory(name="Acme Bank")
    browser.login(staff)
    header_created_in_the_admin(browser, entity)

    # when
    indian_shortcode_form(browser, header=HEADER)

    # then
    error = browser.wait_for(".field-dlt_header .errorlist")
    assert f"Header {HEADER} has no approved template: every reply would be refused." in error.text
    assert not Shortcode.objects.filter(number=NUMBER).exists()


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_the_shortcode_page_fits_the_screen(browser, staff, width, height):
    shortcode = Shortcode.objects.create(number=NUMBER, name="Acme Bank", country="GB", provider="generic")
    Command.objects.create(shortcode=shortcode, code="1", name="Hours", handler_key="reply", config={"text": HOURS})
    browser.login(staff)
    browser.set_window_size(width, height)
    browser.go(f"/admin/commands/shortcode/{shortcode.pk}/change/")
    browser.wait_for("#reply-checks")
    # Only the chosen provider's options show.
    assert browser.find_element(By.NAME, "option__generic__outbound_url").is_displayed()
    assert not browser.find_element(By.NAME, "option__msg91__route").is_displayed()
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert browser.find_element(By.NAME, "_save").is_displayed()

"""A support agent in a real browser: a phone search, its conversation kept current, and no configuration edits."""

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from conftest import wait_until
from conversations.tests.factories import service_shortcode
from delivery.models import DeliveryReport
from delivery.statuses import Status
from delivery.tests.factories import InboundMessageFactory, OutboundMessageFactory

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "+919876543210"
MASKED = "+91******3210"


@pytest.fixture
def agent(db):
    user = User.objects.create_user("asha", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Support agents"))
    return user


@pytest.fixture
def history(db):
    shortcode = service_shortcode()
    question = InboundMessageFactory(phone=PHONE, body="2", status=Status.HANDLED)
    delivered = OutboundMessageFactory(
        phone=PHONE,
        in_reply_to=question,
        body="Your balance is Rs 120.00",
        status=Status.DELIVERED,
        delivered_at=timezone.now(),
    )
    DeliveryReport.objects.create(
        message=delivered, provider="generic", provider_status="DELIVRD", status="delivered", applied=True
    )
    OutboundMessageFactory(
        phone=PHONE,
        body="Today's offer: 10% off",
        status=Status.FAILED,
        error_code="21610",
        error_message="Number unreachable",
    )
    return shortcode


def page_fits(browser) -> bool:
    return browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_an_agent_finds_a_phone_reads_its_conversation_and_cannot_edit_a_shortcode(browser, agent, history):
    browser.login(agent)

    # searches the message list for the number as a subscriber would say it
    browser.go("/admin/delivery/message/")
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys("98765 43210", Keys.ENTER)
    # the list before the search has a #result_list too: wait for the searched one
    wait_until(lambda: "q=" in browser.current_url, what="the search's page")
    browser.wait_for("#result_list")
    rows = browser.find_element(By.ID, "result_list").text
    assert MASKED in rows and PHONE not in rows

    # opens its conversation from the number
    browser.find_element(By.LINK_TEXT, MASKED).click()
    timeline = browser.wait_for("#timeline")
    assert f"Conversation with {MASKED}" in browser.find_element(By.ID, "content").text
    delivered = timeline.find_element(By.CSS_SELECTOR, ".entry-out.status-delivered")
    failed = timeline.find_element(By.CSS_SELECTOR, ".entry-out.status-failed")
    assert "Your balance is Rs 120.00" in delivered.text and "DELIVRD" in delivered.text
    assert "Reason: 21610: Number unreachable" in failed.text
    assert page_fits(browser)

    # a new SMS shows up without a reload
    newest = InboundMessageFactory(phone=PHONE, body="3")
    browser.wait_for(f"#message-{newest.pk}", timeout=15)
    assert "3" in browser.find_element(By.ID, f"message-{newest.pk}").text

    # at phone width the thread still fits
    browser.set_window_size(390, 844)
    browser.refresh()
    browser.wait_for("#timeline")
    assert page_fits(browser)
    browser.set_window_size(1280, 800)

    # sees a shortcode read-only: no save button, no editable field
    browser.go(f"/admin/commands/shortcode/{history.pk}/change/")
    browser.wait_for("#content-main")
    assert not browser.find_elements(By.NAME, "_save")
    assert not browser.find_elements(By.CSS_SELECTOR, "#content-main form input[name=name]")
    assert history.name in browser.find_element(By.ID, "content-main").text


def test_an_agent_searches_a_phone_on_the_conversation_page(browser, agent, history):
    browser.login(agent)
    browser.go("/admin/console/conversation/")

    browser.find_element(By.ID, "id_phone").send_keys("09876543210", Keys.ENTER)

    timeline = browser.wait_for("#timeline")
    wait_until(lambda: len(timeline.find_elements(By.CSS_SELECTOR, ".entry")) == 3, what="three entries")
    assert "Number unreachable" in timeline.text

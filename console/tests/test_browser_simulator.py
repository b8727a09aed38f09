"""The simulator in a real browser: headless Chromium against the live server, at desk and phone width."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from conversations.tests.factories import ASK_NAME, PHONE, registered, service_shortcode
from delivery.models import Message
from delivery.statuses import Direction

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff():
    """Business staff as far as the simulator is concerned: may change commands and read messages."""
    user = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    for app_label, codename in (("commands", "change_command"), ("delivery", "view_message")):
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def thread_texts(browser) -> list[tuple[str, str]]:
    """(direction, text) of each message in the thread, oldest first."""
    bubbles = browser.find_elements(By.CSS_SELECTOR, "#simulator-thread li[data-direction]")
    return [(b.get_attribute("data-direction"), b.find_element(By.CLASS_NAME, "sms-text").text) for b in bubbles]


def wait_for_thread(browser, count: int) -> list[tuple[str, str]]:
    # The thread is redrawn as replies arrive (from the worker, with a broker): an element
    # read during a redraw is stale, and is read again.
    WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda driver: len(thread_texts(driver)) >= count
    )
    return thread_texts(browser)


def wait_for_session(browser, text: str) -> None:
    WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda driver: text in driver.find_element(By.ID, "simulator-session").text
    )


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)])
def test_walking_a_flow_in_the_simulator(browser, staff, width, height):
    # given: a shortcode with a two-step register flow; a member of staff signed in
    service_shortcode(provider="console")
    browser.login(staff)
    browser.set_window_size(width, height)
    browser.go("/admin/console/simulator/")
    browser.wait_for("#simulator-form")

    # when: they pick the shortcode, type as a phone, and send "1"
    Select(browser.find_element(By.NAME, "shortcode")).select_by_value("57675")
    browser.find_element(By.NAME, "phone").send_keys("9876543210")
    browser.find_element(By.NAME, "text").send_keys("1")
    browser.find_element(By.CSS_SELECTOR, "#simulator-send input[name=send]").click()

    # then: the question, and the session open beside the thread
    assert wait_for_thread(browser, 2) == [("in", "1"), ("out", ASK_NAME)]
    wait_for_session(browser, "answer")
    assert browser.find_element(By.CSS_SELECTOR, "#simulator-session input[name=clear]").is_displayed()
    # the cursor waits in the text box, the newest message in view, and nothing overflows the screen
    WebDriverWait(browser, 10).until(lambda driver: driver.switch_to.active_element.get_attribute("name") == "text")
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0

    # when: they answer with the Enter key
    browser.find_element(By.NAME, "text").send_keys("Asha", Keys.ENTER)

    # then: the flow ends with its reply, and the session is gone
    assert wait_for_thread(browser, 4)[2:] == [("in", "Asha"), ("out", registered("Asha"))]
    wait_for_session(browser, "No open session")
    replies = Message.objects.filter(direction=Direction.OUTBOUND, phone=PHONE)
    assert set(replies.values_list("provider", flat=True)) == {"console"}

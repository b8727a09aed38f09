"""Business staff build a flow in a real browser (test_flow_runs.py runs such flows by SMS)."""

import pytest
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conversations.flows import flow_problems
from conversations.models import Flow
from conversations.tests.factories import service_shortcode

pytestmark = pytest.mark.django_db(transaction=True)


def page_loaded(browser) -> None:
    """Wait until the page and everything it loads are in, so no request outlives the test."""
    WebDriverWait(browser, 10).until(lambda driver: driver.execute_script("return document.readyState") == "complete")


def fill(browser, name: str, value: str) -> None:
    field = browser.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def test_staff_build_a_flow_with_a_choice(browser):
    # given
    shortcode = service_shortcode()
    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    browser.login(staff)
    browser.go("/admin/conversations/flow/add/")
    page_loaded(browser)
    Select(browser.find_element(By.NAME, "shortcode")).select_by_value(str(shortcode.pk))
    fill(browser, "name", "Feedback")
    fill(browser, "slug", "feedback")
    fill(browser, "completion_reply", "Thanks {name}, you said {liked}.")
    # when: two steps, the second a choice with two options, added with the admin's own buttons
    for _ in range(2):
        browser.find_element(By.CSS_SELECTOR, "#steps-group .add-row a").click()
    for _ in range(2):
        browser.find_element(By.CSS_SELECTOR, "#options-group .add-row a").click()
    for index, (key, prompt, position) in enumerate(
        [("name", "Your name?", "0"), ("liked", "Liked it? 1 yes 2 no", "1")]
    ):
        fill(browser, f"steps-{index}-key", key)
        fill(browser, f"steps-{index}-answer_key", key)
        fill(browser, f"steps-{index}-prompt", prompt)
        fill(browser, f"steps-{index}-position", position)
    Select(browser.find_element(By.NAME, "steps-1-input_kind")).select_by_value("choice")
    for index, (value, label) in enumerate([("1", "yes"), ("2", "no")]):
        fill(browser, f"options-{index}-step_key", "liked")
        fill(browser, f"options-{index}-value", value)
        fill(browser, f"options-{index}-label", label)
    browser.find_element(By.NAME, "_save").click()
    browser.wait_for(".messagelist .success")
    page_loaded(browser)
    # then: saved whole, and ready to run
    flow = Flow.objects.get(slug="feedback")
    assert list(flow.steps.values_list("key", "input_kind")) == [("name", "text"), ("liked", "choice")]
    assert sorted(flow.options.values_list("step_key", "value", "label")) == [
        ("liked", "1", "yes"),
        ("liked", "2", "no"),
    ]
    assert flow_problems(flow) == []


def test_a_flow_with_a_problem_shows_it_on_the_page(browser):
    shortcode = service_shortcode()
    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    browser.login(staff)
    browser.go("/admin/conversations/flow/add/")
    page_loaded(browser)
    Select(browser.find_element(By.NAME, "shortcode")).select_by_value(str(shortcode.pk))
    fill(browser, "name", "Broken")
    fill(browser, "slug", "broken")
    fill(browser, "completion_reply", "Done.")
    browser.find_element(By.CSS_SELECTOR, "#steps-group .add-row a").click()
    fill(browser, "steps-0-key", "ask")
    fill(browser, "steps-0-answer_key", "answer")
    fill(browser, "steps-0-next_step", "nowhere")
    browser.find_element(By.NAME, "_save").click()
    errors = browser.wait_for("#steps-group .errorlist")
    page_loaded(browser)
    assert "Step 'ask' has no prompt." in errors.text
    assert "Step 'ask' goes to 'nowhere', which is not a step." in errors.text
    assert not Flow.objects.exists()

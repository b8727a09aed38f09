"""The browser the admin's tests drive: a real headless Chromium against the live server."""

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_superuser_signs_in_and_sees_the_admin_index(browser):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")

    browser.login(user)

    assert "Site administration" in browser.title or browser.find_element("id", "content")

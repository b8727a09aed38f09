"""
The console's pages and forms under hostile input (hypothesis), signed in as a superuser:
random and odd-Unicode values in every field the forms read, and in the query strings the
pages take. Whatever arrives, the answer is below 500, and a send or simulated SMS is
stored whole (an E.164 number and its text) or not at all. Derandomized, few examples.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations.tests.factories import service_shortcode
from delivery.models import Message

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Printable and hostile text: controls, surrogate-free astral characters, right-to-left marks, very long runs.
values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200),
    st.sampled_from(["", " ", "0", "-1", "+", "+91", "9876543210", "1" * 40, "\u202e123", "😀" * 170, "<script>"]),
)
shortcode_values = st.one_of(values, st.sampled_from(["1", "57675", "999999"]))

FORMS = {
    "/admin/console/send/": st.fixed_dictionaries(
        {"shortcode": shortcode_values, "phone": values, "text": values, "template": values},
        optional={"value_1": values, "value_2": values, "send": st.just("Send"), "preview": st.just("Preview")},
    ),
    "/admin/console/simulator/": st.fixed_dictionaries(
        {"shortcode": shortcode_values, "phone": values, "text": values},
        optional={"send": st.just("Send"), "clear": st.just("Clear")},
    ),
}
QUERY_PAGES = ["/admin/console/conversation/", "/admin/console/conversation/updates/", "/admin/"]
query_values = st.dictionaries(
    st.sampled_from(["phone", "message", "contact", "report", "after", "window", "q"]), values, max_size=4
)


@pytest.fixture
def staff_client(client, django_user_model):
    service_shortcode(provider="console")
    client.force_login(django_user_model.objects.create_superuser("fuzz", "fuzz@example.com", "pw"))
    return client


def stored_whole() -> bool:
    return all(message.phone.startswith("+") and message.phone[1:].isdigit() for message in Message.objects.all())


@pytest.mark.django_db
@pytest.mark.parametrize("path", sorted(FORMS))
def test_console_forms_never_fail_and_store_whole_messages_or_none(staff_client, path):
    seen = []

    @FUZZ
    @given(data=FORMS[path])
    def post(data):
        response = staff_client.post(path, data)
        seen.append(response.status_code)
        assert response.status_code < 500, (path, data)
        assert stored_whole(), data

    post()
    assert len(seen) >= 10  # the examples really ran


@pytest.mark.django_db
@pytest.mark.parametrize("path", QUERY_PAGES)
def test_console_pages_never_fail_on_odd_queries(staff_client, path):
    @FUZZ
    @given(query=query_values)
    def get(query):
        response = staff_client.get(path, query)
        assert response.status_code < 500, (path, query)

    get()

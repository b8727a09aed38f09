"""The API's documentation pages work in a real browser, from our own static files alone."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "path, title_css",
    [
        ("/api/docs/", ".swagger-ui .info .title"),
        ("/api/redoc/", "redoc h1, [role=main] h1, .api-info h1"),
    ],
)
def test_the_documentation_renders_the_schema(browser, path, title_css):
    # when
    browser.go(path)

    # then: the viewer fetched the schema and shows its title and the send endpoint
    title = browser.wait_for(title_css, timeout=20)
    assert "smsgate send API" in title.text
    assert "/api/v1/messages/" in browser.page_source
    # every script came from this server (drf-spectacular-sidecar), none from a CDN
    sources = browser.execute_script("return [...document.scripts].map(s => s.src).filter(Boolean)")
    assert sources and all(src.startswith(browser.live_server_url + "/static/") for src in sources)

"""
The status callback URL we hand a provider with every send is one our own status webhook
accepts from that provider: signed where the provider signs, and, where the URL carries a
`?token=`, with nothing but that token.
"""

from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.http import QueryDict
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3
from twilio.request_validator import RequestValidator

from conftest import WEBHOOK_SECRET, load_fixture
from delivery.deliver import callback_url
from delivery.models import DeliveryReport
from delivery.statuses import Status
from delivery.tests.factories import OutboundMessageFactory

REFERENCE = "0b1f9d3c-5a57-4c2e-9d8e-3f7a2b1c4d5e"  # the client reference of the Sinch and Textlocal fixtures
NONCE = "05429567804466091622"

# provider -> (status fixture, the provider message id it reports)
REPORTS = {
    "twilio": ("status_delivered.txt", "SM5f3e2b8c9d0a4b1c8e7f6a5b4c3d2e1f"),
    "plivo": ("status_delivered.txt", "db3ce55a-7f1d-11e1-8ea7-1231380bc196"),
    "sinch": ("status_recipient_delivered.json", "01J0S1NCHBATCH00000000000A"),
    "msg91": ("status_v3_delivered.json", "3763646c3058373530393138"),
    "gupshup": ("status_success.txt", "3412345678901234567-1234"),
    "textlocal": ("status_delivered.txt", "tl-1"),
    "generic": ("status_delivered.json", "gw-1"),
}


@pytest.fixture
def configured(settings):
    """Every provider configured for webhooks; every <SLUG>_WEBHOOK_TOKEN setting there is, set."""
    settings.TWILIO_AUTH_TOKEN = "test-twilio-auth-token"
    settings.TWILIO_SHARED_KEY_SECRET = ""
    settings.PLIVO_AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
    settings.PLIVO_AUTH_TOKEN = "test-plivo-auth-token"
    settings.SINCH_WEBHOOK_SECRET = ""
    for name in dir(django_settings):
        if name.endswith("_WEBHOOK_TOKEN"):
            setattr(settings, name, f"tok-{name.lower().replace('_', '-')}")
    return settings


def signature_headers(provider: str, url: str, body: bytes, settings) -> dict[str, str]:
    """What a provider that signs adds to a callback; providers that sign nothing add nothing."""
    if provider == "twilio":
        signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(url, QueryDict(body))
        return {"X-Twilio-Signature": signature}
    if provider == "plivo":
        signed = construct_post_url(url, dict(QueryDict(body).lists())).decode()
        signature = get_signature_v3(settings.PLIVO_AUTH_TOKEN.encode(), signed, NONCE.encode()).decode()
        return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": NONCE}
    if provider == "generic":
        return {"X-Webhook-Secret": WEBHOOK_SECRET}
    return {}


@pytest.mark.django_db
@pytest.mark.parametrize("provider", sorted(REPORTS))
def test_the_callback_url_we_hand_out_is_accepted_by_our_status_webhook(provider, configured, post_webhook):
    # given: a reply sent through `provider`, and the callback URL its send carried
    fixture, provider_message_id = REPORTS[provider]
    message = OutboundMessageFactory(
        provider=provider, uuid=REFERENCE, status=Status.SENT, provider_message_id=provider_message_id
    )
    url = callback_url(provider=provider, reference=message.uuid)
    body = load_fixture("delivery", provider, fixture)
    # the token, when the URL carries one, is the provider's whole proof
    headers = {} if "token=" in url else signature_headers(provider, url, body, configured)

    # when: the provider reports to that URL
    parts = urlsplit(url)
    response = post_webhook(f"{parts.path}?{parts.query}", body, sign=False, headers=headers)

    # then
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert DeliveryReport.objects.filter(message=message).count() == 1


@pytest.mark.parametrize("provider", ["twilio", "plivo", "generic"])
def test_providers_that_authenticate_otherwise_get_no_token(provider, configured):
    # even with a token setting of their name, which their webhooks would ignore
    setattr(configured, f"{provider.upper()}_WEBHOOK_TOKEN", "tok-ignored")
    assert "token=" not in callback_url(provider=provider, reference=REFERENCE)


@pytest.mark.parametrize("provider", ["sinch", "msg91", "gupshup", "textlocal"])
def test_providers_that_sign_nothing_get_their_token(provider, configured):
    token = getattr(configured, f"{provider.upper()}_WEBHOOK_TOKEN")
    assert callback_url(provider=provider, reference=REFERENCE).endswith(f"&token={token}")


def test_no_callback_url_without_a_public_base_url(configured):
    configured.PUBLIC_BASE_URL = ""
    assert callback_url(provider="twilio", reference=REFERENCE) is None

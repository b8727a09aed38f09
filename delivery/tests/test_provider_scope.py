"""
A webhook's credential reaches only its own provider's messages and shortcodes.

A report received for provider X moves only messages sent through X, whether it names
them by our ref or by X's id, now or when the send later records that id. An inbound
received for X on a shortcode configured for another provider is stored, flagged and
not answered. /sms-handler and /sms-dlr choose the provider by the credential the
request presents, never by the payload's shape.
"""

from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.http import QueryDict
from django.test import RequestFactory
from django.urls import reverse
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3
from twilio.request_validator import RequestValidator

from commands.tests.factories import ShortcodeFactory
from conftest import WEBHOOK_SECRET, load_fixture
from delivery.models import DeliveryReport, Message
from delivery.providers import detect_provider
from delivery.providers.base import StatusUpdate, WebhookForbidden, webhook_request_from
from delivery.reports import delivery_report_record, delivery_reports_apply_pending
from delivery.statuses import Direction, Status
from delivery.tests.factories import OutboundMessageFactory

BASE = "https://sms.example.com"
REF = "0b1f9d3c-5a57-4c2e-9d8e-3f7a2b1c4d5e"  # the client reference carried in the Sinch and Textlocal reports
TWILIO_AUTH_TOKEN = "scope-twilio-auth-token"
PLIVO_AUTH_TOKEN = "scope-plivo-auth-token"
PLIVO_NONCE = "05429567804466091622"
TOKENS = {
    "msg91": "scope-msg91-token",
    "sinch": "scope-sinch-token",
    "textlocal": "scope-textlocal-token",
    "gupshup": "scope-gupshup-token",
}

# webhook provider -> (its delivered report, the provider id in it or "" when it carries none)
REPORTS = {
    "generic": ("status_delivered.json", "gw-1"),
    "msg91": ("status_v3_delivered.json", "3763646c3058373530393138"),
    "sinch": ("status_recipient_delivered.json", "01J0S1NCHBATCH00000000000A"),
    "twilio": ("status_delivered.txt", "SM5f3e2b8c9d0a4b1c8e7f6a5b4c3d2e1f"),
    "plivo": ("status_delivered.txt", "db3ce55a-7f1d-11e1-8ea7-1231380bc196"),
    "textlocal": ("status_delivered.txt", ""),
    "gupshup": ("status_success.txt", "3412345678901234567-1234"),
}
# webhook provider -> (an inbound SMS, the shortcode it is addressed to)
INBOUNDS = {
    "generic": ("inbound_json.json", "57675"),
    "msg91": ("inbound_vmn_form.txt", "57675"),
    "sinch": ("inbound_mo_text.json", "57675"),
    "twilio": ("inbound_sms.txt", "57675"),
    "plivo": ("inbound_sms.txt", "57675"),
    "textlocal": ("inbound_keyword.txt", "919220592205"),
}


def another(slug: str) -> str:
    """A provider other than `slug`."""
    return "plivo" if slug == "twilio" else "twilio"


@pytest.fixture(autouse=True)
def credentials(settings):
    """Every provider's webhook credential set, so each one authenticates with its own."""
    settings.TWILIO_AUTH_TOKEN = TWILIO_AUTH_TOKEN
    settings.TWILIO_SHARED_KEY_SECRET = ""
    settings.PLIVO_AUTH_TOKEN = PLIVO_AUTH_TOKEN
    settings.SINCH_WEBHOOK_SECRET = ""
    for slug, token in TOKENS.items():
        setattr(settings, f"{slug.upper()}_WEBHOOK_TOKEN", token)
    return settings


def post_as(client, slug: str, path: str, body: bytes):
    """Send `body` to `path` as provider `slug` would, with that provider's credential."""
    content_type = "application/json" if body[:1] in (b"{", b"[") else "application/x-www-form-urlencoded"
    headers = {}
    if slug in TOKENS:
        path += ("&" if "?" in path else "?") + urlencode({"token": TOKENS[slug]})
    elif slug == "generic":
        headers["HTTP_X_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    elif slug == "twilio":
        signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(BASE + path, QueryDict(body))
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    elif slug == "plivo":
        signed = construct_post_url(BASE + path, dict(QueryDict(body).lists())).decode()
        headers["HTTP_X_PLIVO_SIGNATURE_V3"] = get_signature_v3(
            PLIVO_AUTH_TOKEN.encode(), signed, PLIVO_NONCE.encode()
        ).decode()
        headers["HTTP_X_PLIVO_SIGNATURE_V3_NONCE"] = PLIVO_NONCE
    if slug == "gupshup":  # Gupshup reports with GET, its fields in the query
        return client.get(f"{path}&{body.decode().strip()}")
    return client.generic("POST", path, body, content_type=content_type, REMOTE_ADDR="127.0.0.1", **headers)


def post_report(client, slug: str, *, ref: str | None = None):
    fixture, _ = REPORTS[slug]
    path = f"/webhooks/{slug}/status/" + (f"?ref={ref}" if ref else "")
    return post_as(client, slug, path, load_fixture("delivery", slug, fixture))


# Delivery reports ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("owner", ["same", "other"])
@pytest.mark.parametrize("webhook", sorted(REPORTS))
def test_a_report_by_ref_moves_only_its_own_providers_message(client, webhook, owner):
    # given: a sent message, through the webhook's provider or through another
    provider = webhook if owner == "same" else another(webhook)
    message = OutboundMessageFactory(
        uuid=REF, provider=provider, provider_message_id="not-in-the-report", status=Status.SENT
    )

    # when: a delivered report on the webhook names it by our ref
    response = post_report(client, webhook, ref=REF)

    # then: accepted either way; only the webhook's own provider's message moved
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    report = DeliveryReport.objects.get()
    if owner == "same":
        assert (message.status, report.message_id, report.applied) == ("delivered", message.id, True)
    else:
        assert (message.status, report.message, report.applied) == ("sent", None, False)
        assert report.provider == webhook


@pytest.mark.django_db
@pytest.mark.parametrize("owner", ["same", "other"])
@pytest.mark.parametrize("webhook", sorted(slug for slug, (_, pid) in REPORTS.items() if pid))
def test_a_report_by_provider_id_moves_only_its_own_providers_message(client, webhook, owner):
    # given: a sent message whose provider id is the one in the report
    _, provider_message_id = REPORTS[webhook]
    provider = webhook if owner == "same" else another(webhook)
    message = OutboundMessageFactory(provider=provider, provider_message_id=provider_message_id, status=Status.SENT)

    # when: the report carries no ref of ours
    response = post_report(client, webhook)

    # then
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == ("delivered" if owner == "same" else "sent")


@pytest.mark.django_db
def test_a_pending_report_naming_another_providers_message_is_never_applied():
    # given: a Plivo message, and a report received for Twilio naming it by ref, with an id nobody has yet
    plivo_message = OutboundMessageFactory(provider="plivo", status=Status.SENT, provider_message_id="plivo-1")
    delivery_report_record(
        provider="twilio",
        update=StatusUpdate(
            "delivered", "delivered", provider_message_id="SM-later", reference=str(plivo_message.uuid)
        ),
    )
    twilio_message = OutboundMessageFactory(provider="twilio", status=Status.SENDING)

    # when: the Twilio send records that id, and the Plivo one records it too
    for message in (twilio_message, plivo_message):
        delivery_reports_apply_pending(message_id=message.id, provider=message.provider, provider_message_id="SM-later")

    # then: the report names a message that is not Twilio's, so it moves neither
    twilio_message.refresh_from_db()
    plivo_message.refresh_from_db()
    assert (twilio_message.status, plivo_message.status) == ("sending", "sent")
    assert DeliveryReport.objects.get().message is None


@pytest.mark.django_db
def test_a_pending_report_is_applied_when_its_own_providers_send_records_the_id():
    # given: a Twilio report that arrived before the send stored Twilio's id
    delivery_report_record(provider="twilio", update=StatusUpdate("delivered", "delivered", provider_message_id="SM-9"))
    message = OutboundMessageFactory(provider="twilio", status=Status.SENDING)

    # when
    moved = delivery_reports_apply_pending(message_id=message.id, provider="twilio", provider_message_id="SM-9")

    # then
    message.refresh_from_db()
    assert (moved, message.status) == (1, "delivered")


# Inbound SMS ----------------------------------------------------------------------------------------


@pytest.fixture
def gateways(settings, provider_server):
    """The generic gateway and MSG91's API both point at the local stand-in."""
    settings.GATEWAY_OUTBOUND_URL = provider_server.url + "/send"
    settings.MSG91_API_BASE = provider_server.url
    settings.MSG91_AUTH_KEY = "scope-msg91-auth-key"
    return provider_server


def configured_elsewhere(webhook: str) -> str:
    """A provider, other than the webhook's, whose sends reach the local stand-in."""
    return "msg91" if webhook == "generic" else "generic"


@pytest.mark.django_db
@pytest.mark.parametrize("webhook", sorted(INBOUNDS))
def test_inbound_for_another_providers_shortcode_is_stored_flagged_and_not_answered(
    client, gateways, django_capture_on_commit_callbacks, webhook
):
    # given: the addressed shortcode sends through another provider
    fixture, number = INBOUNDS[webhook]
    owner = configured_elsewhere(webhook)
    ShortcodeFactory(number=number, provider=owner)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post_as(
            client, webhook, f"/webhooks/{webhook}/inbound/", load_fixture("conversations", webhook, fixture)
        )

    # then: stored as received through the webhook's provider, flagged, and nothing went out
    assert response.status_code == 200, response.content
    inbound = Message.objects.get(direction=Direction.INBOUND)
    assert (inbound.provider, inbound.status, inbound.error_code) == (webhook, "handled", "provider_mismatch")
    assert f"received through {webhook}" in inbound.error_message
    assert f"configured for {owner}" in inbound.error_message
    assert not Message.objects.filter(direction=Direction.OUTBOUND).exists()
    assert gateways.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize("shortcode_provider,answered", [("generic", True), ("console", True), ("msg91", False)])
def test_the_generic_webhook_answers_generic_and_console_shortcodes(
    post_webhook, gateways, django_capture_on_commit_callbacks, shortcode_provider, answered
):
    # given: the console provider has no webhook of its own; the generic one is its way in
    ShortcodeFactory(number="57675", provider=shortcode_provider)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook("/webhooks/generic/inbound/", {"from": "+919876543210", "to": "57675", "body": "2"})

    # then
    assert response.status_code == 200, response.content
    inbound = Message.objects.get(direction=Direction.INBOUND)
    assert Message.objects.filter(direction=Direction.OUTBOUND, in_reply_to=inbound).exists() is answered
    assert (inbound.error_code == "provider_mismatch") is not answered
    # a generic shortcode's reply reached the gateway; a console one's is only logged
    assert len(gateways.requests) == (1 if shortcode_provider == "generic" else 0)


@pytest.mark.django_db
def test_the_simulator_answers_on_any_providers_shortcode(gateways, capsys):
    # given: a shortcode that sends through the generic gateway
    ShortcodeFactory(number="57675", provider="generic")

    # when: an operator runs the simulator on the server
    call_command("simulate_sms", "--from", "+919876543210", "--to", "57675", "2")

    # then: answered through the shortcode's own provider
    assert "via generic" in capsys.readouterr().out
    assert len(gateways.requests) == 1


@pytest.mark.django_db
def test_admin_shows_why_an_inbound_was_not_answered(
    client, admin_client, gateways, django_capture_on_commit_callbacks
):
    # given: an inbound on Twilio's webhook for a shortcode configured for the generic gateway
    ShortcodeFactory(number="57675", provider="generic")
    with django_capture_on_commit_callbacks(execute=True):
        post_as(
            client, "twilio", "/webhooks/twilio/inbound/", load_fixture("conversations", "twilio", "inbound_sms.txt")
        )
    inbound = Message.objects.get(direction=Direction.INBOUND)

    # when
    page = admin_client.get(reverse("admin:delivery_message_change", args=[inbound.pk]))
    listing = admin_client.get(reverse("admin:delivery_message_changelist") + "?error_code=provider_mismatch")

    # then: the page gives the reason, the list flags it and filters on it
    assert page.status_code == 200
    assert "provider_mismatch" in page.content.decode()
    assert inbound.error_message in page.content.decode()
    assert listing.status_code == 200
    assert f'title="{inbound.error_message}"' in listing.content.decode()


# /sms-handler and /sms-dlr ---------------------------------------------------------------------------

SINCH_SHAPED = (
    b'{"type": "mo_text", "id": "01J0S1NCHM0000000000000001", "from": "919876543210", "to": "57675", "body": "2"}'
)
TWILIO_SHAPED = b"MessageSid=SM1&AccountSid=AC1&From=%2B919876543210&To=57675&Body=2"
GENERIC_SHAPED = b'{"from": "+919876543210", "to": "57675", "body": "2"}'


@pytest.mark.parametrize(
    "body,query,headers,chosen",
    [
        (SINCH_SHAPED, "", {}, "generic"),
        (SINCH_SHAPED, f"?token={TOKENS['sinch']}", {}, "sinch"),
        (SINCH_SHAPED, f"?token={TOKENS['msg91']}", {}, "msg91"),
        (SINCH_SHAPED, "?token=wrong", {}, "generic"),
        (TWILIO_SHAPED, "", {"HTTP_X_WEBHOOK_SECRET": "anything"}, "generic"),
        (TWILIO_SHAPED, "", {"HTTP_X_PLIVO_SIGNATURE_V3": "anything"}, "plivo"),
        (GENERIC_SHAPED, "", {"HTTP_X_TWILIO_SIGNATURE": "anything"}, "twilio"),
        (GENERIC_SHAPED, "", {"HTTP_X_SINCH_WEBHOOK_SIGNATURE": "anything"}, "sinch"),
    ],
    ids=[
        "sinch-shape-no-credential",
        "sinch-token",
        "msg91-token-on-sinch-shape",
        "wrong-token",
        "twilio-shape-generic-secret",
        "twilio-shape-plivo-signature",
        "generic-shape-twilio-signature",
        "generic-shape-sinch-signature",
    ],
)
def test_slugless_provider_is_the_one_whose_credential_is_presented(credentials, body, query, headers, chosen):
    # given
    content_type = "application/json" if body[:1] == b"{" else "application/x-www-form-urlencoded"
    webhook = webhook_request_from(
        RequestFactory().post(f"/sms-handler{query}", body, content_type=content_type, **headers)
    )

    # then: the credential, not the payload's shape, names the provider that must prove it
    assert detect_provider(webhook).slug == chosen


def test_credentials_of_two_providers_are_refused():
    # given
    headers = {"HTTP_X_TWILIO_SIGNATURE": "a", "HTTP_X_WEBHOOK_SECRET": WEBHOOK_SECRET}
    webhook = webhook_request_from(
        RequestFactory().post("/sms-handler", GENERIC_SHAPED, content_type="application/json", **headers)
    )

    # then
    with pytest.raises(WebhookForbidden):
        detect_provider(webhook)


@pytest.mark.django_db
@pytest.mark.parametrize("credential,status", [({}, 403), ({"X-Webhook-Secret": WEBHOOK_SECRET}, 200)])
def test_a_token_providers_payload_without_its_token_is_the_generic_providers(post_webhook, credential, status):
    # given: a Sinch-shaped inbound (Sinch proves itself with ?token= here) posted without it
    ShortcodeFactory(number="57675", provider="generic")

    # when
    response = post_webhook("/sms-handler", SINCH_SHAPED, sign=False, headers=credential)

    # then: unsigned, the generic rules refuse it; with the generic secret it is the generic provider's
    assert response.status_code == status, response.content
    assert [m.provider for m in Message.objects.filter(direction=Direction.INBOUND)] == (
        ["generic"] if status == 200 else []
    )


@pytest.mark.django_db
def test_a_report_with_another_providers_token_on_sms_dlr_is_that_providers(client):
    # given: a Twilio message, and MSG91's token on a Twilio-shaped report naming it
    message = OutboundMessageFactory(provider="twilio", provider_message_id=REPORTS["twilio"][1], status=Status.SENT)
    body = load_fixture("delivery", "twilio", "status_delivered.txt")

    # when
    response = client.generic(
        "POST", f"/sms-dlr?token={TOKENS['msg91']}", body, content_type="application/x-www-form-urlencoded"
    )

    # then: MSG91's webhook cannot read it, and Twilio's message did not move
    assert response.status_code == 400, response.content
    message.refresh_from_db()
    assert message.status == "sent"

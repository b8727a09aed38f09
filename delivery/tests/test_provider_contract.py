"""
The provider contract, one table for every provider that receives webhooks: each of its
recorded events (inbound SMS, one delivery report per status word) is posted through its
real webhook URL, signed or tokened as that provider requires, and what a user sees is
checked: the stored rows, the acknowledgement, and the refusals. A send per provider
against a local server shows where the India DLT IDs go.

A provider's own test module keeps only what is its alone: signature vectors, payload
quirks (several reports in one request, nested formats), its error codes.
"""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.http import QueryDict
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3
from twilio.request_validator import RequestValidator

from conftest import FakeResponse, generic_signed_headers, load_fixture, sinch_signed_headers
from delivery.models import DeliveryReport, Message
from delivery.providers import _registry, all_providers, get_provider
from delivery.providers.adapter import ADAPTERS_DIR
from delivery.statuses import Direction
from delivery.tests.factories import OutboundMessageFactory, outbound_sms

BASE = "https://sms.example.com"
REFERENCE = uuid.UUID("0b1f9d3c-5a57-4c2e-9d8e-3f7a2b1c4d5e")  # our reference in the status fixtures that carry one
TWILIO_TOKEN = "contract-twilio-auth-token"
PLIVO_TOKEN = "contract-plivo-auth-token"
SINCH_SECRET = "contract-sinch-secret"
DLT_ENTITY_ID = "1101234567890123456"
DLT_TEMPLATE_ID = "1107161234567890123"


def token_of(slug: str) -> str:
    return f"contract-{slug}-token"


# Signing: (path, body) -> (path, headers), as each provider proves a request is its own ------


def with_token(slug: str) -> Callable[[str, bytes], tuple[str, dict[str, str]]]:
    def sign(path: str, body: bytes) -> tuple[str, dict[str, str]]:
        return f"{path}{'&' if '?' in path else '?'}token={token_of(slug)}", {}

    return sign


def twilio_sign(path: str, body: bytes) -> tuple[str, dict[str, str]]:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(BASE + path, QueryDict(body))
    return path, {"X-Twilio-Signature": signature}


def plivo_sign(path: str, body: bytes) -> tuple[str, dict[str, str]]:
    nonce = uuid.uuid4().hex
    signed = construct_post_url(BASE + path, dict(QueryDict(body).lists())).decode()
    signature = get_signature_v3(PLIVO_TOKEN.encode(), signed, nonce.encode()).decode()
    return path, {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}


def sinch_sign(path: str, body: bytes) -> tuple[str, dict[str, str]]:
    return path, sinch_signed_headers(body, secret=SINCH_SECRET)


def generic_sign(path: str, body: bytes) -> tuple[str, dict[str, str]]:
    return path, generic_signed_headers(body)


# The table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    fixture: str
    phone: str
    shortcode: str
    body: str
    provider_message_id: str | None


@dataclass(frozen=True)
class Send:
    """How to point the provider at the local server, its answer, and where the DLT IDs must appear."""

    point: Callable[..., None]  # (settings, monkeypatch, server_url)
    reply: FakeResponse
    provider_message_id: str
    dlt_params: dict[str, str]  # the provider's parameter name -> the ID it must carry
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Contract:
    slug: str
    sign: Callable[[str, bytes], tuple[str, dict[str, str]]]
    # Settings that, all unset with DEBUG off, close every webhook of the provider.
    secret_settings: tuple[str, ...]
    ack_content_type: str
    inbound: tuple[Inbound, ...]
    # A field the first inbound fixture cannot do without, and the name the 400 gives it.
    required_field: tuple[str, str]
    # (fixture, the provider's word, ours on the report: None when unknown)
    reports: tuple[tuple[str, str, str | None], ...]
    unknown_report: tuple[str, str]
    message: dict  # the outbound message the status fixtures report on
    send: Send


def point_setting(name: str, suffix: str = "") -> Callable[..., None]:
    def point(settings, monkeypatch, url: str) -> None:
        setattr(settings, name, url + suffix)

    return point


def point_adapter(slug: str) -> Callable[..., None]:
    """The shipped config with its API origin replaced by the local server's, its path kept."""

    def point(settings, monkeypatch, url: str) -> None:
        config = json.loads((ADAPTERS_DIR / f"{slug}.json").read_text())
        parts = urlsplit(config["outbound"]["url"])
        config["outbound"]["url"] = url + parts.path
        settings.SMS_ADAPTERS = {slug: config}
        _registry.cache_clear()

    return point


DLT_OPTIONS = {"dlt_entity_id": DLT_ENTITY_ID, "dlt_template_id": DLT_TEMPLATE_ID}


def dlt(entity: str | None, template: str | None) -> dict[str, str]:
    names = {entity: DLT_ENTITY_ID, template: DLT_TEMPLATE_ID}
    return {name: value for name, value in names.items() if name}


CONTRACTS = [
    Contract(
        slug="twilio",
        sign=twilio_sign,
        secret_settings=("TWILIO_AUTH_TOKEN",),
        ack_content_type="text/xml",
        inbound=(
            Inbound("inbound_sms.txt", "+919876543210", "57675", "2", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
            Inbound("inbound_unicode.txt", "+919876543210", "57675", "बैलेंस 2", "SM8c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f"),
            Inbound(
                "inbound_messaging_service.txt", "+919876543210", "57675", "BAL", "SM0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
            ),
        ),
        required_field=("Body", "Body"),
        reports=(
            ("status_accepted.txt", "accepted", "queued"),
            ("status_scheduled.txt", "scheduled", "queued"),
            ("status_queued.txt", "queued", "queued"),
            ("status_sending.txt", "sending", "sending"),
            ("status_sent.txt", "sent", "sent"),
            ("status_delivered.txt", "delivered", "delivered"),
            ("status_read.txt", "read", "delivered"),
            ("status_undelivered.txt", "undelivered", "undelivered"),
            ("status_partially_delivered.txt", "partially_delivered", "undelivered"),
            ("status_failed.txt", "failed", "failed"),
            ("status_canceled.txt", "canceled", "failed"),
            ("status_receiving.txt", "receiving", "queued"),
            ("status_received.txt", "received", "queued"),
        ),
        unknown_report=("status_unknown.txt", "delivery_unknown"),
        message={"provider_message_id": "SM5f3e2b8c9d0a4b1c8e7f6a5b4c3d2e1f"},
        send=Send(
            point=point_setting("TWILIO_API_BASE"),
            reply=FakeResponse(201, json.loads(load_fixture("delivery", "twilio", "api_message_created.json"))),
            provider_message_id="SM5f3e2b8c9d0a4b1c8e7f6a5b4c3d2e1f",
            # Twilio takes no DLT IDs: its India senders are registered with Twilio.
            dlt_params={},
        ),
    ),
    Contract(
        slug="plivo",
        sign=plivo_sign,
        secret_settings=("PLIVO_AUTH_TOKEN",),
        ack_content_type="application/xml",
        inbound=(
            Inbound("inbound_sms.txt", "+919876543210", "57675", "2", "a8d6f2b0-2c7e-11f1-9d3a-0242ac110004"),
            Inbound("inbound_unicode.txt", "+919876543210", "57675", "बैलेंस 2", "c1e7a9d2-2c7e-11f1-9d3a-0242ac110004"),
        ),
        required_field=("Text", "Text"),
        reports=(
            ("status_queued.txt", "queued", "queued"),
            ("status_sent.txt", "sent", "sent"),
            ("status_delivered.txt", "delivered", "delivered"),
            ("status_read.txt", "read", "delivered"),
            ("status_undelivered.txt", "undelivered", "undelivered"),
            ("status_failed.txt", "failed", "failed"),
            ("status_rejected.txt", "rejected", "rejected"),
            ("status_received.txt", "received", "queued"),
        ),
        unknown_report=("status_unknown.txt", "expired"),
        message={"provider_message_id": "db3ce55a-7f1d-11e1-8ea7-1231380bc196"},
        send=Send(
            point=point_setting("PLIVO_API_BASE"),
            reply=FakeResponse(202, json.loads(load_fixture("delivery", "plivo", "api_message_queued.json"))),
            provider_message_id="db3ce55a-7f1d-11e1-8ea7-1231380bc196",
            dlt_params=dlt("dlt_entity_id", "dlt_template_id"),
        ),
    ),
    Contract(
        slug="sinch",
        sign=sinch_sign,
        secret_settings=("SINCH_WEBHOOK_SECRET", "SINCH_WEBHOOK_TOKEN"),
        ack_content_type="application/json",
        inbound=(
            Inbound("inbound_mo_text.json", "+919876543210", "57675", "2", "01J0S1NCHM0000000000000001"),
            Inbound("inbound_mo_text_unicode.json", "+919876543211", "57675", "नमस्ते 👋", "01J0S1NCHM0000000000000002"),
        ),
        required_field=("from", "from"),
        reports=(
            ("status_recipient_queued.json", "Queued", "queued"),
            ("status_recipient_dispatched.json", "Dispatched", "sent"),
            ("status_recipient_delivered.json", "Delivered", "delivered"),
            ("status_recipient_unknown.json", "Unknown", "sent"),
            ("status_recipient_failed.json", "Failed", "undelivered"),
            ("status_recipient_deleted.json", "Deleted", "undelivered"),
            ("status_recipient_rejected.json", "Rejected", "rejected"),
            ("status_recipient_aborted.json", "Aborted", "failed"),
            ("status_recipient_cancelled.json", "Cancelled", "failed"),
            ("status_recipient_expired.json", "Expired", "failed"),
        ),
        unknown_report=("status_recipient_unmapped_word.json", "Retrying"),
        message={"uuid": REFERENCE, "provider_message_id": "01J0S1NCHBATCH00000000000A"},
        send=Send(
            point=point_setting("SINCH_API_BASE"),
            reply=FakeResponse(201, {"id": "01J0BATCHFROMSINCH00000001", "to": ["919876543210"]}),
            provider_message_id="01J0BATCHFROMSINCH00000001",
            # Sinch takes no DLT IDs per message: they are registered on the service plan.
            dlt_params={},
        ),
    ),
    Contract(
        slug="msg91",
        sign=with_token("msg91"),
        secret_settings=("MSG91_WEBHOOK_TOKEN",),
        ack_content_type="application/json",
        inbound=(
            Inbound("inbound_json.json", "+919876543211", "57675", "2", "msg91-mo-0002"),
            Inbound("inbound_vmn_form.txt", "+919876543210", "57675", "BAL", "msg91-mo-0001"),
        ),
        # Without any text field; MSG91 names none, and we ask for the usual one.
        required_field=("text", "message"),
        reports=(
            ("status_v3_delivered.json", "1", "delivered"),
            ("status_v3_failed.json", "2", "failed"),
            ("status_v3_ndnc.json", "9", "rejected"),
            ("status_v3_rejected_16.json", "16", "rejected"),
            ("status_v3_blocked.json", "17", "rejected"),
            ("status_v3_rejected_25.json", "25", "rejected"),
        ),
        unknown_report=("status_v3_unmapped_code.json", "99"),
        message={"provider_message_id": "3763646c3058373530393138"},
        send=Send(
            point=point_setting("MSG91_API_BASE"),
            reply=FakeResponse(200, {"message": "3763646c3058373530393999", "type": "success"}),
            provider_message_id="3763646c3058373530393999",
            dlt_params=dlt(None, "DLT_TE_ID"),
        ),
    ),
    Contract(
        slug="generic",
        sign=generic_sign,
        secret_settings=("WEBHOOK_SECRET",),
        ack_content_type="application/json",
        inbound=(
            Inbound("inbound_json.json", "+919876543210", "57675", "2", "gen-in-0002"),
            Inbound("inbound_form.txt", "+919876543210", "57675", "2", "gen-in-0001"),
            Inbound("inbound_seed_names.json", "+919876543210", "57675", "2", "gen-in-0003"),
            Inbound("inbound_seed_form.txt", "+919876543210", "57675", "2", None),
        ),
        required_field=("body", "body"),
        reports=(
            ("status_queued.json", "queued", "queued"),
            ("status_accepted.json", "accepted", "queued"),
            ("status_enroute.json", "enroute", "sent"),
            ("status_submitted.json", "submitted", "sent"),
            ("status_sent.json", "sent", "sent"),
            ("status_delivered.json", "delivered", "delivered"),
            ("status_form_delivrd.txt", "DELIVRD", "delivered"),
            ("status_undelivered.json", "undelivered", "undelivered"),
            ("status_form_undeliv.txt", "UNDELIV", "undelivered"),
            ("status_expired.json", "expired", "undelivered"),
            ("status_failed.json", "failed", "failed"),
            ("status_rejected.json", "rejected", "rejected"),
            ("status_form_rejectd.txt", "REJECTD", "rejected"),
        ),
        unknown_report=("status_unknown.json", "on_its_way"),
        message={"provider_message_id": "gw-1"},
        send=Send(
            point=point_setting("GATEWAY_OUTBOUND_URL", "/send"),
            reply=FakeResponse(200, {"id": "gw-77"}),
            provider_message_id="gw-77",
            # Our own contract names no DLT fields; a shortcode maps them onto its aggregator's names.
            dlt_params=dlt("pe_id", "template_id"),
            options={"dlt_fields": {"dlt_entity_id": "pe_id", "dlt_template_id": "template_id"}},
        ),
    ),
    Contract(
        slug="gupshup",
        sign=with_token("gupshup"),
        secret_settings=("GUPSHUP_WEBHOOK_TOKEN",),
        ack_content_type="application/json",
        inbound=(Inbound("inbound_keyword.txt", "+919876543210", "57675", "BAL", None),),
        required_field=("content", "content"),
        reports=(
            ("status_success.txt", "SUCCESS", "delivered"),
            ("status_failure.txt", "FAILURE", "undelivered"),
            ("status_unknown.txt", "UNKNOWN", "sent"),
        ),
        unknown_report=("status_unmapped_word.txt", "DELAYED"),
        message={"provider_message_id": "3412345678901234567-1234"},
        send=Send(
            point=point_adapter("gupshup"),
            reply=FakeResponse(
                200, "success | 919876543210 | 3412345678901234567-1234", {"Content-Type": "text/plain"}
            ),
            provider_message_id="3412345678901234567-1234",
            dlt_params=dlt("principalEntityId", "dltTemplateId"),
        ),
    ),
    Contract(
        slug="textlocal",
        sign=with_token("textlocal"),
        secret_settings=("TEXTLOCAL_WEBHOOK_TOKEN",),
        ack_content_type="application/json",
        inbound=(Inbound("inbound_keyword.txt", "+919876543210", "919220592205", "MYCO 2", None),),
        required_field=("content", "content"),
        reports=(
            ("status_delivered.txt", "D", "delivered"),
            ("status_undelivered.txt", "U", "undelivered"),
            ("status_invalid.txt", "I", "rejected"),
            ("status_no_receipt.txt", "?", "sent"),
        ),
        unknown_report=("status_unmapped_word.txt", "X"),
        message={"uuid": REFERENCE, "provider_message_id": "1151346216"},
        send=Send(
            point=point_adapter("textlocal"),
            reply=FakeResponse(200, {"status": "success", "messages": [{"id": "1151346216"}]}),
            provider_message_id="1151346216",
            # Textlocal takes the DLT template from the text: its API has no ID parameters.
            dlt_params={},
        ),
    ),
    Contract(
        slug="karix",
        sign=with_token("karix"),
        secret_settings=("KARIX_WEBHOOK_TOKEN",),
        ack_content_type="application/json",
        inbound=(Inbound("inbound_keyword.txt", "+919876543210", "57675", "BAL", "KRXMO2406061347190001"),),
        required_field=("message", "message"),
        reports=(
            ("status_delivrd.txt", "DELIVRD", "delivered"),
            ("status_undeliv.txt", "UNDELIV", "undelivered"),
            ("status_expired.txt", "EXPIRED", "undelivered"),
            ("status_rejectd.txt", "REJECTD", "rejected"),
            ("status_unknown.txt", "UNKNOWN", "sent"),
        ),
        unknown_report=("status_unmapped_word.txt", "ENQUEUED"),
        message={"uuid": REFERENCE, "provider_message_id": "2711225301345617402"},
        send=Send(
            point=point_adapter("karix"),
            reply=FakeResponse(
                200,
                {
                    "ackid": "2711225301345617402",
                    "time": "2024-06-06 13:47:10",
                    "status": {"code": "200", "desc": "Message received by platform"},
                },
            ),
            provider_message_id="2711225301345617402",
            dlt_params=dlt("dlt_entity_id", "dlt_template_id"),
        ),
    ),
    Contract(
        slug="routemobile",
        sign=with_token("routemobile"),
        secret_settings=("ROUTEMOBILE_WEBHOOK_TOKEN",),
        ack_content_type="application/json",
        inbound=(Inbound("inbound_keyword.txt", "+919876543210", "57675", "BAL", "rml-mo-8f3c2e6a0001"),),
        required_field=("sMessage", "sMessage"),
        reports=(
            ("status_delivrd.txt", "DELIVRD", "delivered"),
            ("status_undeliv.txt", "UNDELIV", "undelivered"),
            ("status_expired.txt", "EXPIRED", "undelivered"),
            ("status_deleted.txt", "DELETED", "undelivered"),
            ("status_rejectd.txt", "REJECTD", "rejected"),
            ("status_acked.txt", "ACKED", "sent"),
            ("status_accepted.txt", "ACCEPTED", "sent"),
            ("status_enroute.txt", "ENROUTE", "sent"),
            ("status_unknown.txt", "UNKNOWN", "sent"),
        ),
        unknown_report=("status_unmapped_word.txt", "SUBMITD"),
        message={"provider_message_id": "8f3c2e6a-5d1b-4c0e-9a7f-6b5c4d3e2f10"},
        send=Send(
            point=point_adapter("routemobile"),
            reply=FakeResponse(
                200, "1701|919876543210|8f3c2e6a-5d1b-4c0e-9a7f-6b5c4d3e2f10", {"Content-Type": "text/plain"}
            ),
            provider_message_id="8f3c2e6a-5d1b-4c0e-9a7f-6b5c4d3e2f10",
            dlt_params=dlt("entityid", "tempid"),
        ),
    ),
    Contract(
        slug="kaleyra",
        sign=with_token("kaleyra"),
        secret_settings=("KALEYRA_WEBHOOK_TOKEN",),
        ack_content_type="application/json",
        inbound=(
            Inbound(
                "inbound_keyword.json",
                "+919876543210",
                "+919220592205",
                "MYCO 2",
                "90e5c1d2-8865-4a96-85b6-4f0a6b2c3d48",
            ),
        ),
        required_field=("message", "message"),
        reports=(
            ("status_sent.json", "SENT", "sent"),
            ("status_delivered.json", "DELIVERED", "delivered"),
            ("status_failed.json", "FAILED", "failed"),
            ("status_undelivered.json", "UNDELIVERED", "rejected"),
        ),
        unknown_report=("status_unmapped_word.json", "QUEUED"),
        message={"provider_message_id": "d8e3f2a1-4b5c-4d6e-9f70-8a9b0c1d2e3f"},
        send=Send(
            point=point_adapter("kaleyra"),
            reply=FakeResponse(
                202,
                {
                    "id": "d8e3f2a1-4b5c-4d6e-9f70-8a9b0c1d2e3f",
                    "sender": "MYBRND",
                    "totalCount": 1,
                    "data": [{"message_id": "d8e3f2a1-4b5c-4d6e-9f70-8a9b0c1d2e3f:1", "recipient": "+919876543210"}],
                },
            ),
            provider_message_id="d8e3f2a1-4b5c-4d6e-9f70-8a9b0c1d2e3f",
            dlt_params=dlt("entity_id", "template_id"),
        ),
    ),
]
BY_SLUG = {contract.slug: contract for contract in CONTRACTS}


def each(rows: Callable[[Contract], list]):
    """Parametrize over (contract, row) for every row `rows` gives per contract."""
    cases = [
        pytest.param(contract, row, id=f"{contract.slug}-{row[0]}") for contract in CONTRACTS for row in rows(contract)
    ]
    return pytest.mark.parametrize("contract,row", cases)


every_provider = pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.slug)


@pytest.fixture(autouse=True)
def credentials(settings, monkeypatch):
    """Every provider's webhook secret and API credentials; the registry rebuilt around each test."""
    settings.TWILIO_ACCOUNT_SID = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_SHARED_KEY_SECRET = ""
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_FROM = ""
    settings.PLIVO_AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
    settings.PLIVO_AUTH_TOKEN = PLIVO_TOKEN
    settings.SINCH_WEBHOOK_SECRET = SINCH_SECRET
    settings.SINCH_WEBHOOK_TOKEN = ""
    settings.SINCH_SERVICE_PLAN_ID = "plan-1"
    settings.SINCH_API_TOKEN = "contract-sinch-api-token"
    settings.MSG91_AUTH_KEY = "contract-msg91-auth-key"
    settings.GATEWAY_API_KEY = "contract-gateway-api-key"
    for slug in ("msg91", "gupshup", "textlocal", "karix", "routemobile", "kaleyra"):
        setattr(settings, f"{slug.upper()}_WEBHOOK_TOKEN", token_of(slug))
    for name in (
        "GUPSHUP_USERID",
        "GUPSHUP_PASSWORD",
        "TEXTLOCAL_API_KEY",
        "KARIX_API_KEY",
        "ROUTEMOBILE_USERNAME",
        "ROUTEMOBILE_PASSWORD",
        "KALEYRA_SID",
        "KALEYRA_API_KEY",
    ):
        monkeypatch.setenv(name, f"contract-{name.lower()}")
    _registry.cache_clear()
    yield settings
    _registry.cache_clear()


# Bodies ------------------------------------------------------------------------------------


def fields_of(body: bytes) -> dict:
    return json.loads(body) if body.lstrip()[:1] == b"{" else dict(parse_qsl(body.decode(), keep_blank_values=True))


def rebuilt(original: bytes, fields: dict) -> bytes:
    """`fields` written the way `original` was (JSON or a form)."""
    return json.dumps(fields).encode() if original.lstrip()[:1] == b"{" else urlencode(fields).encode()


def post_as(post_webhook, contract: Contract, path: str, body: bytes, *, signed: bool = True):
    """POST `body` to `path` as the aggregator would: signed or tokened, unless `signed` is off."""
    path, headers = contract.sign(path, body) if signed else (path, {})
    return post_webhook(path, body, sign=False, headers=headers)


def inbound_fixture(contract: Contract, name: str) -> bytes:
    return load_fixture("conversations", contract.slug, name)


def status_fixture(contract: Contract, name: str) -> bytes:
    return load_fixture("delivery", contract.slug, name)


def after_report(ours: str | None) -> str:
    """A message already `sent`, after a report of `ours`: status only moves forward."""
    return "sent" if ours in (None, "queued", "sending", "sent") else ours


# The table itself ------------------------------------------------------------------------------


def test_every_provider_that_receives_webhooks_is_in_the_table():
    registered = {provider.slug for provider in all_providers() if provider.receives_webhooks}
    assert registered == set(BY_SLUG)


@every_provider
def test_every_status_word_a_provider_maps_has_a_report_in_the_table(contract):
    words = {word.lower() for _, word, _ in contract.reports}
    assert set(get_provider(contract.slug).STATUS_MAP) - words == set()


# Inbound ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@each(lambda contract: [(inbound.fixture, inbound) for inbound in contract.inbound])
def test_inbound_is_stored_and_acknowledged(post_webhook, contract, row):
    # given
    _, expected = row

    # when
    response = post_as(
        post_webhook, contract, f"/webhooks/{contract.slug}/inbound/", inbound_fixture(contract, expected.fixture)
    )

    # then
    assert response.status_code == 200, response.content
    assert response["Content-Type"].split(";")[0] == contract.ack_content_type
    message = Message.objects.get()
    assert (message.direction, message.provider, message.phone, message.shortcode, message.body) == (
        "in",
        contract.slug,
        expected.phone,
        expected.shortcode,
        expected.body,
    )
    assert message.provider_message_id == expected.provider_message_id


@pytest.mark.django_db
@every_provider
def test_a_retried_inbound_is_stored_once(post_webhook, contract):
    # given
    body = inbound_fixture(contract, contract.inbound[0].fixture)

    # when: the aggregator retries, signing again
    first = post_as(post_webhook, contract, f"/webhooks/{contract.slug}/inbound/", body)
    again = post_as(post_webhook, contract, f"/webhooks/{contract.slug}/inbound/", body)

    # then
    assert (first.status_code, again.status_code) == (200, 200)
    assert Message.objects.count() == 1


@pytest.mark.django_db
@every_provider
def test_inbound_without_a_required_field_is_a_400_naming_it(post_webhook, contract):
    # given
    dropped, named = contract.required_field
    original = inbound_fixture(contract, contract.inbound[0].fixture)
    fields = fields_of(original)
    del fields[dropped]

    # when
    response = post_as(post_webhook, contract, f"/webhooks/{contract.slug}/inbound/", rebuilt(original, fields))

    # then
    assert response.status_code == 400
    assert response.json()["field"] == named
    assert not Message.objects.exists()


@pytest.mark.django_db
@every_provider
def test_slugless_inbound_url_finds_the_provider_by_its_credential(post_webhook, contract):
    # when
    body = inbound_fixture(contract, contract.inbound[0].fixture)
    response = post_as(post_webhook, contract, "/sms-handler", body)

    # then
    assert response.status_code == 200, response.content
    assert Message.objects.get().provider == contract.slug


# Delivery reports ------------------------------------------------------------------------------


@pytest.mark.django_db
@each(lambda contract: contract.reports)
def test_report_is_stored_and_moves_the_message_forward(post_webhook, contract, row):
    # given: our reply, already accepted by the provider
    fixture, word, ours = row
    message = OutboundMessageFactory(provider=contract.slug, status="sent", **contract.message)

    # when
    response = post_as(post_webhook, contract, f"/webhooks/{contract.slug}/status/", status_fixture(contract, fixture))

    # then
    assert response.status_code == 200, response.content
    assert response["Content-Type"].split(";")[0] == contract.ack_content_type
    report = DeliveryReport.objects.get()
    assert (report.message_id, report.provider, report.provider_status, report.status) == (
        message.id,
        contract.slug,
        word,
        ours,
    )
    assert report.raw_payload
    message.refresh_from_db()
    assert message.status == after_report(ours)


@pytest.mark.django_db
@every_provider
def test_report_with_an_unknown_word_is_stored_unapplied_and_answered_200(post_webhook, contract):
    # given
    fixture, word = contract.unknown_report
    message = OutboundMessageFactory(provider=contract.slug, status="sent", **contract.message)

    # when
    response = post_as(post_webhook, contract, f"/webhooks/{contract.slug}/status/", status_fixture(contract, fixture))

    # then: 200, so the aggregator does not retry a report we will never understand better
    assert response.status_code == 200, response.content
    report = DeliveryReport.objects.get()
    assert (report.message_id, report.provider_status, report.status, report.applied) == (
        message.id,
        word,
        "",
        False,
    )
    message.refresh_from_db()
    assert message.status == "sent"


@pytest.mark.django_db
@every_provider
def test_slugless_report_url_finds_the_provider_by_its_credential(post_webhook, contract):
    # given
    fixture, _, _ = contract.reports[-1]
    OutboundMessageFactory(provider=contract.slug, status="sent", **contract.message)

    # when
    response = post_as(post_webhook, contract, "/sms-dlr", status_fixture(contract, fixture))

    # then
    assert response.status_code == 200, response.content
    assert DeliveryReport.objects.get().provider == contract.slug


# Refusals --------------------------------------------------------------------------------------


def inbound_and_status(contract: Contract) -> list[tuple[str, bytes]]:
    return [
        (f"/webhooks/{contract.slug}/inbound/", inbound_fixture(contract, contract.inbound[0].fixture)),
        (f"/webhooks/{contract.slug}/status/", status_fixture(contract, contract.reports[0][0])),
    ]


@pytest.mark.django_db
@every_provider
def test_unsigned_or_untokened_requests_are_refused_and_store_nothing(post_webhook, contract):
    OutboundMessageFactory(provider=contract.slug, status="sent", **contract.message)
    for path, body in inbound_and_status(contract):
        response = post_as(post_webhook, contract, path, body, signed=False)
        assert response.status_code == 403, (path, response.content)
    assert not Message.objects.filter(direction=Direction.INBOUND).exists()
    assert not DeliveryReport.objects.exists()


@pytest.mark.django_db
@every_provider
def test_a_wrong_token_or_a_body_changed_after_signing_is_refused(post_webhook, contract):
    # given: a request signed or tokened as the provider does, then its text changed and
    # its token (for providers that sign nothing) replaced
    original = inbound_fixture(contract, contract.inbound[0].fixture)
    path, headers = contract.sign(f"/webhooks/{contract.slug}/inbound/", original)
    fields = fields_of(original)
    text_field = contract.required_field[0]
    changed = rebuilt(original, {**fields, text_field: f"{fields[text_field]} STOP"})

    # when
    response = post_webhook(path.replace(token_of(contract.slug), "wrong"), changed, sign=False, headers=headers)

    # then
    assert response.status_code == 403, response.content
    assert not Message.objects.exists()


@pytest.mark.django_db
@every_provider
def test_an_unset_secret_with_debug_off_refuses_every_webhook(credentials, post_webhook, contract):
    # given: requests signed or tokened while the secret was known, then the secret unset
    requests = [(*contract.sign(path, body), body) for path, body in inbound_and_status(contract)]
    credentials.DEBUG = False
    for name in contract.secret_settings:
        setattr(credentials, name, "")

    # when
    answers = [post_webhook(path, body, sign=False, headers=headers) for path, headers, body in requests]

    # then
    assert [answer.status_code for answer in answers] == [403, 403]
    assert not Message.objects.exists()
    assert not DeliveryReport.objects.exists()


# Sending ---------------------------------------------------------------------------------------


def sent_params(request) -> dict:
    """The parameters a request carried: its query, then its form or JSON body."""
    params = dict(parse_qsl(urlsplit(request.path).query, keep_blank_values=True))
    content_type = request.headers.get("Content-Type", "")
    if "json" in content_type:
        params.update(request.json())
    elif "form" in content_type:
        params.update(parse_qsl(request.body.decode(), keep_blank_values=True))
    return params


@every_provider
def test_send_carries_the_dlt_ids_in_the_providers_own_parameters(credentials, monkeypatch, provider_server, contract):
    # given
    contract.send.point(credentials, monkeypatch, provider_server.url)
    provider_server.script = [contract.send.reply]
    sms = outbound_sms(provider=contract.slug, sender="MYBRND", options={**DLT_OPTIONS, **contract.send.options})

    # when
    result = get_provider(contract.slug).send(sms)

    # then
    (request,) = provider_server.requests
    params = sent_params(request)
    assert {name: params.get(name) for name in contract.send.dlt_params} == contract.send.dlt_params
    assert result.provider_message_id == contract.send.provider_message_id

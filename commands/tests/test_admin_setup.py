"""
Shortcode setup in the admin: every setting editable, provider options as real fields,
and a configuration that could never reply refused with the reason before a phone finds out.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from commands.handlers import UNAVAILABLE_REPLY
from commands.models import Shortcode
from commands.tests.factories import CommandFactory, ShortcodeFactory
from console.readiness import command_reply_checks
from delivery.providers import get_provider
from templates.tests.factories import HeaderFactory, TemplateFactory, dlt_registration

ADD_URL = "/admin/commands/shortcode/add/"
HEADER = "ACMEBK"
NEUTRAL_TEXTS = {
    "menu_text": "Reply with a code from the menu.",
    "unknown_text": "Sorry, we did not understand that. Reply with a code from the menu.",
    "help_text": "Reply with a code from the menu. Reply STOP to opt out.",
    "opt_out_reply": "You have been unsubscribed and will receive no more messages. Reply START to resubscribe.",
    "opt_in_reply": "You are subscribed again. Reply HELP for help.",
}


@pytest.fixture
def staff_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def shortcode_form(**overrides) -> dict:
    data = {
        "number": "56161",
        "name": "Bank",
        "active": "on",
        "country": "IN",
        "provider": "console",
        "dlt_bound": "false",
        "dlt_header": "",
        "sender_id": "",
        **NEUTRAL_TEXTS,
        "opt_out_keywords": "",
        "inbound_limit_per_minute": "20",
        "max_mps": "30",
        "segment_limit": "4",
        "session_ttl": "300",
        "catch_all_handler": "",
        "catch_all_config": "{}",
        "commands-TOTAL_FORMS": "0",
        "commands-INITIAL_FORMS": "0",
    }
    return {**data, **overrides}


def registered_texts(sender_id: str = HEADER):
    """An approved header whose templates are exactly the shortcode's own texts (and the failure reply)."""
    return dlt_registration(*NEUTRAL_TEXTS.values(), UNAVAILABLE_REPLY, sender_id=sender_id)


# The page ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "dlt_bound",
        "dlt_header",
        "sender_id",
        "inbound_limit_per_minute",
        "max_mps",
        "segment_limit",
        "opt_out_keywords",
        "opt_out_reply",
        "opt_in_reply",
        "catch_all_handler",
        "catch_all_config",
        "option__generic__outbound_url",
        "option__generic__api_key_env",
        "option__msg91__route",
        "option__twilio__messaging_service_sid",
    ],
)
def test_every_setting_has_a_field_on_the_add_page(staff_client, field):
    page = staff_client.get(ADD_URL).content.decode()
    assert f'name="{field}"' in page


def test_the_provider_options_are_fields_not_a_json_box(staff_client):
    page = staff_client.get(ADD_URL).content.decode()
    assert 'name="provider_config"' not in page
    assert "generic options" in page


def test_a_new_shortcode_starts_with_neutral_texts(staff_client):
    page = staff_client.get(ADD_URL).content.decode()
    for text in NEUTRAL_TEXTS.values():
        assert text in page
    assert "1 register, 2 balance" not in page  # the demo's menu is the demo's own


def test_the_dlt_header_is_chosen_from_the_approved_headers(staff_client):
    registered_texts()
    HeaderFactory(sender_id="OTHERS", active=False)
    page = staff_client.get(ADD_URL).content.decode()
    assert f'<option value="{HEADER}">' in page
    assert "6 approved templates" in page
    assert '<option value="OTHERS">' not in page


# Saving -----------------------------------------------------------------------------------


def test_staff_create_an_indian_shortcode_that_can_reply(staff_client):
    registered_texts()
    response = staff_client.post(ADD_URL, shortcode_form(dlt_bound="unknown", dlt_header=HEADER))
    assert response.status_code == 302, response.content.decode()
    shortcode = Shortcode.objects.get(number="56161")
    assert shortcode.requires_dlt and shortcode.sender_id == HEADER


@pytest.mark.parametrize(
    "overrides,field,why",
    [
        ({"dlt_header": ""}, "dlt_header", "choose one"),
        ({"dlt_header": "EMPTYH"}, "dlt_header", "has no approved template"),
        (
            {"dlt_header": HEADER, "menu_text": "Welcome! Pick a code."},
            "menu_text",
            "No approved template of header ACMEBK matches",
        ),
        (
            {"dlt_header": HEADER, "opt_in_reply": "Welcome back."},
            "opt_in_reply",
            "No approved template of header ACMEBK matches",
        ),
    ],
)
def test_a_dlt_bound_shortcode_that_could_never_reply_is_refused_with_why(staff_client, overrides, field, why):
    # given: the header ACMEBK with templates for the neutral texts, and EMPTYH with none
    registered_texts()
    HeaderFactory(sender_id="EMPTYH")
    # when
    response = staff_client.post(ADD_URL, shortcode_form(country="IN", dlt_bound="unknown", **overrides))
    # then
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert why in " ".join(errors[field])
    assert not Shortcode.objects.filter(number="56161").exists()


def test_the_refusal_names_the_nearest_template_and_where_the_text_departs(staff_client):
    header = registered_texts()
    nearest = header.templates.get(content=NEUTRAL_TEXTS["help_text"])
    response = staff_client.post(
        ADD_URL,
        shortcode_form(
            dlt_bound="true", dlt_header=HEADER, help_text="Reply with a code from the menu! Reply STOP to opt out."
        ),
    )
    message = " ".join(response.context["adminform"].form.errors["help_text"])
    assert f"Nearest: {nearest.dlt_template_id}" in message
    assert "departs from it at offset 31: expected '. Reply STOP to opt out.', found '! Reply STOP" in message


def test_a_shortcode_that_is_not_dlt_bound_takes_any_sender_id(staff_client):
    response = staff_client.post(ADD_URL, shortcode_form(country="GB", dlt_bound="unknown", sender_id="ACME"))
    assert response.status_code == 302
    assert Shortcode.objects.get(number="56161").sender_id == "ACME"


@pytest.mark.parametrize(
    "provider,options,stored",
    [
        (
            "generic",
            {"outbound_url": "https://gateway.example.com/v2/sms"},
            {"outbound_url": "https://gateway.example.com/v2/sms"},
        ),
        (
            "generic",
            {"api_key_env": "GATEWAY_BANK_KEY", "timeout": "5"},
            {"api_key_env": "GATEWAY_BANK_KEY", "timeout": 5},
        ),
        (
            "generic",
            {"dlt_fields": "dlt_template_id=template_id\ndlt_entity_id=pe_id"},
            {"dlt_fields": {"dlt_template_id": "template_id", "dlt_entity_id": "pe_id"}},
        ),
        ("msg91", {"route": "1"}, {"route": "1"}),
        ("twilio", {"messaging_service_sid": "MG" + "a" * 32}, {"messaging_service_sid": "MG" + "a" * 32}),
        (
            "textlocal",
            {"outbound_url": "https://api.textlocal.in/v2/send/"},
            {"outbound_url": "https://api.textlocal.in/v2/send/"},
        ),
        ("plivo", {}, {}),
    ],
)
def test_provider_options_are_saved_from_their_fields(staff_client, settings, provider, options, stored):
    settings.GATEWAY_OUTBOUND_URL = "https://gateway.example.com/v1/sms"
    data = shortcode_form(
        provider=provider, **{f"option__{provider}__{name}": value for name, value in options.items()}
    )
    # another provider's fields are ignored
    data["option__generic__timeout"] = data.get("option__generic__timeout", "") if provider == "generic" else "7"
    response = staff_client.post(ADD_URL, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Shortcode.objects.get(number="56161").provider_config == stored


@pytest.mark.parametrize(
    "provider,options,why",
    [
        ("generic", {"outbound_url": "https://collector.example.net/sms"}, "not an allowed origin"),
        ("generic", {"api_key_env": "DATABASE_URL"}, "GATEWAY_"),
        ("generic", {"api_key_env": "gateway-key-value"}, "GATEWAY_"),
        ("generic", {"timeout": "600"}, "less than or equal to 60"),
        ("generic", {"dlt_fields": "password=x"}, "is not one of"),
        ("msg91", {"route": "9"}, "Select a valid choice"),
        ("twilio", {"messaging_service_sid": "my-service"}, "expected form"),
        ("textlocal", {"outbound_url": "https://collector.example.net/send/"}, "not an allowed origin"),
    ],
)
def test_invalid_provider_options_are_refused_on_their_field(staff_client, settings, provider, options, why):
    settings.GATEWAY_OUTBOUND_URL = "https://gateway.example.com/v1/sms"
    settings.GATEWAY_ALLOWED_ORIGINS = []
    data = shortcode_form(
        provider=provider, **{f"option__{provider}__{name}": value for name, value in options.items()}
    )
    response = staff_client.post(ADD_URL, data)
    assert response.status_code == 200
    (name,) = options
    assert why in " ".join(response.context["adminform"].form.errors[f"option__{provider}__{name}"])
    assert not Shortcode.objects.filter(number="56161").exists()


@pytest.mark.parametrize(
    "provider,options,error",
    [
        ("generic", {"sender": "ACME"}, "unknown option 'sender'"),
        ("generic", {"timeout": "5"}, "'timeout' must be a whole number"),
        ("generic", {"dlt_fields": ["template_id"]}, "'dlt_fields' must be an object"),
        ("msg91", {"route": 4}, "'route' must be a string"),
        ("twilio", {"outbound_url": "https://api.twilio.com/"}, "unknown option 'outbound_url'"),
        ("plivo", {"anything": 1}, "it reads no options"),
        ("console", {"api_key": "x"}, "unknown option 'api_key'"),
    ],
)
def test_options_written_by_code_are_validated_too(provider, options, error):
    assert any(error in text for text in get_provider(provider).options_errors(options))


def test_every_provider_declares_valid_options_and_accepts_none():
    for slug in ("console", "generic", "twilio", "plivo", "sinch", "msg91", "gupshup", "textlocal", "karix"):
        provider = get_provider(slug)
        assert provider.options_errors({}) == []
        for option in provider.OPTIONS:
            assert option.label and option.kind


def test_an_env_option_says_whether_its_variable_is_set_never_its_value(staff_client, monkeypatch):
    monkeypatch.setenv("GATEWAY_BANK_KEY", "bank-key-value")
    shortcode = ShortcodeFactory(provider="generic", provider_config={"api_key_env": "GATEWAY_BANK_KEY"})
    page = staff_client.get(f"/admin/commands/shortcode/{shortcode.pk}/change/").content.decode()
    assert "GATEWAY_BANK_KEY: set on this server" in page
    assert "bank-key-value" not in page
    monkeypatch.delenv("GATEWAY_BANK_KEY")
    page = staff_client.get(f"/admin/commands/shortcode/{shortcode.pk}/change/").content.decode()
    assert "GATEWAY_BANK_KEY: NOT set on this server" in page
    assert "Environment variable GATEWAY_BANK_KEY is not set here." in page


def test_a_catch_all_handler_is_chosen_from_the_registry(staff_client):
    response = staff_client.post(ADD_URL, shortcode_form(catch_all_handler="nonexistent"))
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    response = staff_client.post(
        ADD_URL, shortcode_form(catch_all_handler="reply", catch_all_config='{"text": "Thanks"}')
    )
    assert response.status_code == 302
    assert Shortcode.objects.get(number="56161").catch_all_handler == "reply"


# Warnings after the save, and the change page ----------------------------------------------


def test_a_provider_without_credentials_is_saved_with_a_warning(staff_client, settings):
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""
    response = staff_client.post(ADD_URL, shortcode_form(provider="twilio"), follow=True)
    page = response.content.decode()
    assert "Replies cannot be sent: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN not set" in page
    assert Shortcode.objects.filter(number="56161").exists()


def test_the_change_page_lists_each_command_with_whether_its_reply_passes_dlt(staff_client):
    registered_texts()
    dlt_registration("Your balance is {#numeric#} rupees.", sender_id=HEADER)
    shortcode = ShortcodeFactory(number="56161", dlt_bound=True, sender_id=HEADER)
    CommandFactory(shortcode=shortcode, code="1", name="Hours", config={"text": "We are open 9 to 5."})
    CommandFactory(shortcode=shortcode, code="2", name="Fixed", config={"text": "Your balance is 100 rupees."})
    page = staff_client.get(f"/admin/commands/shortcode/{shortcode.pk}/change/").content.decode()
    table = page.split('id="reply-checks"')[1]
    hours, fixed = table.split("command 1 · Hours")[1], table.split("command 2 · Fixed")[1]
    assert 'class="passes-no"' in hours.split("</tr>")[0]
    assert "nearest:" in hours.split("</tr>")[0]
    assert 'class="passes-yes"' in fixed.split("</tr>")[0]
    assert "command 1 · Hours: its reply fails DLT" in page


def test_saving_a_command_whose_reply_fails_dlt_warns(staff_client):
    registered_texts()
    shortcode = ShortcodeFactory(number="56161", dlt_bound=True, sender_id=HEADER)
    response = staff_client.post(
        "/admin/commands/command/add/",
        {
            "shortcode": shortcode.pk,
            "code": "9",
            "name": "Hours",
            "active": "on",
            "handler_key": "reply",
            "config": '{"text": "We are open 9 to 5."}',
            "aliases-TOTAL_FORMS": "0",
            "aliases-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert "Its reply fails DLT on shortcode 56161" in response.content.decode()


@pytest.mark.parametrize(
    "provider,token_setting,path",
    [
        ("generic", None, "/webhooks/generic/inbound/"),
        ("msg91", "MSG91_WEBHOOK_TOKEN", "/webhooks/msg91/inbound/?token="),
        ("gupshup", "GUPSHUP_WEBHOOK_TOKEN", "/webhooks/gupshup/status/?token="),
        ("twilio", None, "/webhooks/twilio/status/"),
        ("console", None, "/webhooks/generic/inbound/"),
        ("smpp", None, "receives over its own connection: there is no webhook to set"),
    ],
)
def test_staff_see_the_webhook_urls_to_paste_never_a_secret(staff_client, settings, provider, token_setting, path):
    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    if token_setting:
        setattr(settings, token_setting, "token-value-42")
    shortcode = ShortcodeFactory(provider=provider)
    page = staff_client.get(f"/admin/commands/shortcode/{shortcode.pk}/change/").content.decode()
    assert (path if path.startswith("receives") else f"https://sms.example.com{path}") in page
    if token_setting:
        assert f"{token_setting} (set)" in page
    assert "token-value-42" not in page


# Options an adapter's config declares -----------------------------------------------------


@pytest.fixture
def acme_adapter(settings, provider_server, monkeypatch):
    """A deployment's own adapter (settings.SMS_ADAPTERS) declaring a `route` option its sends carry."""
    from delivery.providers import _registry

    settings.SMS_ADAPTERS = {
        "acmesms": {
            "name": "Acme SMS",
            "auth": {"type": "token"},
            "inbound": {"from": "from", "to": "to", "body": "text"},
            "status": {"id": "id", "status": "status", "map": {"DELIVERED": "delivered"}},
            "options": [
                {
                    "name": "route",
                    "label": "Route",
                    "kind": "choice",
                    "choices": [["t", "transactional"], ["p", "promotional"]],
                    "default": "t",
                    "help_text": "Acme's traffic class.",
                }
            ],
            "outbound": {
                "url": f"{provider_server.url}/send",
                "params": {"to": "{to}", "text": "{message}", "route": "{option:route}", "key": "{env:ACMESMS_KEY}"},
                "response": {"id_path": "id"},
            },
        }
    }
    settings.SMS_PROVIDER_SLUGS = [*settings.SMS_PROVIDER_SLUGS, "acmesms"]
    _registry.cache_clear()
    yield get_provider("acmesms")
    _registry.cache_clear()


def test_an_adapter_option_is_a_field_validated_and_saved(staff_client, acme_adapter):
    assert 'name="option__acmesms__route"' in staff_client.get(ADD_URL).content.decode()
    refused = staff_client.post(ADD_URL, shortcode_form(provider="acmesms", option__acmesms__route="x"))
    assert "Select a valid choice" in refused.content.decode()
    saved = staff_client.post(ADD_URL, shortcode_form(provider="acmesms", option__acmesms__route="p"))
    assert saved.status_code == 302
    assert Shortcode.objects.get(number="56161").provider_config == {"route": "p"}


@pytest.mark.parametrize("options,route", [({"route": "p"}, "p"), ({}, "t")])
def test_an_adapter_send_carries_the_option_or_its_default(acme_adapter, provider_server, monkeypatch, options, route):
    from conftest import FakeResponse
    from delivery.providers.base import OutboundSMS

    monkeypatch.setenv("ACMESMS_KEY", "acme-key")
    provider_server.script = [FakeResponse(200, {"id": "a-1"})]
    sms = OutboundSMS(
        reference="r-1", to="+919876543210", sender="ACMEBK", body="hi", callback_url=None, options=options
    )
    assert acme_adapter.send(sms).provider_message_id == "a-1"
    assert f"route={route}" in provider_server.requests[0].body.decode()


def test_an_adapter_whose_credential_variable_is_unset_cannot_send(acme_adapter, monkeypatch):
    monkeypatch.delenv("ACMESMS_KEY", raising=False)
    assert acme_adapter.send_refusal() == "ACMESMS_KEY not set: every send fails"
    monkeypatch.setenv("ACMESMS_KEY", "acme-key")
    assert acme_adapter.send_refusal() is None


def test_staff_edit_a_dlt_bound_shortcode_and_its_header_stays(staff_client):
    registered_texts()
    shortcode = ShortcodeFactory(number="56161", dlt_bound=True, sender_id=HEADER, **NEUTRAL_TEXTS)
    url = f"/admin/commands/shortcode/{shortcode.pk}/change/"
    form = staff_client.get(url).context["adminform"].form
    assert form.initial["dlt_header"] == HEADER
    response = staff_client.post(url, shortcode_form(name="Renamed", dlt_bound="true", dlt_header=HEADER))
    assert response.status_code == 302, response.context["adminform"].form.errors
    shortcode.refresh_from_db()
    assert (shortcode.name, shortcode.sender_id) == ("Renamed", HEADER)


def test_every_option_of_every_provider_is_a_field(staff_client, settings):
    page = staff_client.get(ADD_URL).content.decode()
    for slug in settings.SMS_PROVIDER_SLUGS:
        for option in get_provider(slug).OPTIONS:
            assert f'name="option__{slug}__{option.name}"' in page, (slug, option.name)


def test_a_required_option_left_empty_is_refused_on_its_field(staff_client, settings, acme_adapter):
    settings.SMS_ADAPTERS["acmesms"]["options"].append({"name": "account", "label": "Account", "required": True})
    from delivery.providers import _registry

    _registry.cache_clear()
    response = staff_client.post(ADD_URL, shortcode_form(provider="acmesms"))
    assert response.context["adminform"].form.errors["option__acmesms__account"] == [
        "'account' is required for acmesms"
    ]
    response = staff_client.post(ADD_URL, shortcode_form(provider="acmesms", option__acmesms__account="bank-1"))
    assert response.status_code == 302
    assert Shortcode.objects.get(number="56161").provider_config == {"account": "bank-1"}


def test_a_command_row_whose_handler_options_are_invalid_is_refused_on_its_row(staff_client, monkeypatch):
    from commands.handlers import HANDLERS, RegisteredHandler, reply_handler

    def needs_text(config):
        if not config.get("text"):
            raise ValidationError("'text' is required")

    monkeypatch.setitem(HANDLERS, "strict", RegisteredHandler("strict", reply_handler, "Strict", True, needs_text))
    shortcode = ShortcodeFactory(number="56161", country="GB")
    command = CommandFactory(shortcode=shortcode, code="1", name="Hours", handler_key="strict", config={})
    data = shortcode_form(
        country="GB",
        **{
            "commands-TOTAL_FORMS": "1",
            "commands-INITIAL_FORMS": "1",
            "commands-0-id": str(command.pk),
            "commands-0-shortcode": str(shortcode.pk),
            "commands-0-code": "1",
            "commands-0-name": "Hours",
            "commands-0-handler_key": "strict",
            "commands-0-active": "on",
        },
    )
    response = staff_client.post(f"/admin/commands/shortcode/{shortcode.pk}/change/", data)
    assert response.status_code == 200
    (row,) = response.context["inline_admin_formsets"][0].formset.forms
    assert row.non_field_errors() == ["handler options: 'text' is required"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "template_status,on_header,passes,why",
    [
        ("approved", True, True, "renders template"),
        ("approved", False, False, "is not approved for header ACMEBK"),
        ("inactive", True, False, "is not an approved template"),
    ],
)
def test_a_command_replying_through_a_named_template_is_checked_against_the_header(
    template_status, on_header, passes, why
):
    header = registered_texts()
    template = TemplateFactory(
        entity=header.entity,
        category="service_implicit",
        content="Your balance is {#numeric#} rupees.",
        status=template_status,
        headers=[header] if on_header else [HeaderFactory(entity=header.entity, category="service")],
    )
    shortcode = ShortcodeFactory(number="56161", dlt_bound=True, sender_id=HEADER)
    command = CommandFactory(
        shortcode=shortcode, handler_key="balance", config={"template": template.dlt_template_id, "values": ["{n}"]}
    )
    (check,) = command_reply_checks(shortcode, [command])
    assert (check.passes, why in check.why) == (passes, True)


def test_a_user_who_may_only_view_shortcodes_sees_the_page_read_only(client, settings, db):
    from django.contrib.auth.models import Permission

    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    viewer = get_user_model().objects.create_user("agent", "agent@example.com", "pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_shortcode"))
    shortcode = ShortcodeFactory(provider="generic", provider_config={"outbound_url": "https://gateway.example.com/x"})
    client.force_login(viewer)
    response = client.get(f"/admin/commands/shortcode/{shortcode.pk}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="option__generic__outbound_url"' not in page and 'name="_save"' not in page
    assert "https://sms.example.com/webhooks/generic/inbound/" in page


def test_saving_drops_keys_the_provider_does_not_declare_and_says_so(staff_client):
    # given: options saved before they were declared
    shortcode = ShortcodeFactory(
        number="56161", country="GB", provider="textlocal", provider_config={"outbound": {"params": {"test": "1"}}}
    )
    # when
    response = staff_client.post(
        f"/admin/commands/shortcode/{shortcode.pk}/change/",
        shortcode_form(country="GB", provider="textlocal"),
        follow=True,
    )
    # then
    assert "Removed options outbound: textlocal does not declare them." in response.content.decode()
    shortcode.refresh_from_db()
    assert shortcode.provider_config == {}


def test_catch_all_options_must_be_an_object(staff_client):
    response = staff_client.post(ADD_URL, shortcode_form(catch_all_handler="reply", catch_all_config="[1]"))
    assert "Write the catch-all options as a JSON object" in response.content.decode()

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.forms import inlineformset_factory

from commands.admin import AliasFormSet, CommandForm
from commands.checks import check_command_handlers
from commands.models import Alias, Command
from commands.parsing import parse_text
from commands.services import REGISTRY_VERSION_KEY, command_lookup, command_update, shortcode_get
from commands.tests.factories import CommandFactory, ShortcodeFactory


@pytest.mark.django_db
@pytest.mark.parametrize("word", ["2", "BAL", "bal", "Bal", "２"])
def test_lookup_by_code_or_alias_case_insensitively(word):
    # given
    command = CommandFactory(code="2", aliases=["BAL"])
    CommandFactory(shortcode=command.shortcode, code="1")
    # when
    found = command_lookup(shortcode=command.shortcode, parsed=parse_text(word))
    # then
    assert found == command


@pytest.mark.django_db
def test_inactive_commands_and_other_shortcodes_are_not_found():
    command = CommandFactory(code="7", active=False)
    CommandFactory(code="8")
    assert command_lookup(shortcode=command.shortcode, parsed=parse_text("7")) is None
    assert command_lookup(shortcode=command.shortcode, parsed=parse_text("8")) is None


@pytest.mark.django_db
def test_code_is_unique_per_shortcode_in_the_database_whatever_its_case():
    command = CommandFactory(code="BAL")
    with pytest.raises(IntegrityError):
        Command.objects.create(shortcode=command.shortcode, code="bal", name="dup", handler_key="reply")


@pytest.mark.django_db
@pytest.mark.parametrize("new_code", ["bal", "BAL", "2"])
def test_admin_form_refuses_a_code_already_used_as_code_or_alias(new_code):
    # given: code 2 with alias BAL
    existing = CommandFactory(code="2", aliases=["BAL"])
    # when
    form = CommandForm(
        data={
            "shortcode": existing.shortcode.pk,
            "code": new_code,
            "name": "Other",
            "handler_key": "reply",
            "config": "{}",
            "active": True,
        }
    )
    # then
    assert not form.is_valid()
    assert "Already used on this shortcode" in str(form.errors)


@pytest.mark.django_db
def test_admin_alias_formset_refuses_an_alias_taken_by_another_command():
    first = CommandFactory(code="1", aliases=["REG"])
    second = CommandFactory(shortcode=first.shortcode, code="2")
    data = {
        "aliases-TOTAL_FORMS": "1",
        "aliases-INITIAL_FORMS": "0",
        "aliases-MIN_NUM_FORMS": "0",
        "aliases-MAX_NUM_FORMS": "1000",
        "aliases-0-keyword": "reg",
    }
    formset_class = inlineformset_factory(Command, Alias, formset=AliasFormSet, fields=("keyword",))
    formset = formset_class(data=data, instance=second, prefix="aliases")
    assert not formset.is_valid()
    assert "REG" in str(formset.non_form_errors())


@pytest.mark.django_db
def test_command_update_normalises_and_replaces_aliases():
    command = CommandFactory(code="2", aliases=["OLD"])
    command.code = "bal2"
    command_update(command=command, aliases=["balance", " Bal "])
    assert Command.objects.get(pk=command.pk).code == "BAL2"
    assert sorted(Alias.objects.filter(command=command).values_list("keyword", flat=True)) == ["BAL", "BALANCE"]


@pytest.mark.django_db
def test_command_update_refuses_alias_clash_with_another_command():
    first = CommandFactory(code="1")
    second = CommandFactory(shortcode=first.shortcode, code="2")
    with pytest.raises(ValidationError):
        command_update(command=second, aliases=["1"])


@pytest.mark.django_db
def test_system_check_reports_a_command_naming_a_missing_handler():
    # given
    ok = CommandFactory(handler_key="reply")
    broken = CommandFactory(shortcode=ok.shortcode, handler_key="no_such_handler")
    # when
    errors = check_command_handlers(databases=["default"])
    # then
    assert [e.id for e in errors] == ["commands.E001"]
    assert "no_such_handler" in errors[0].msg
    assert errors[0].obj == f"commands.Command:{broken.pk}"


@pytest.mark.django_db
def test_system_check_passes_when_every_handler_exists():
    CommandFactory(handler_key="http")
    assert check_command_handlers(databases=["default"]) == []


@pytest.mark.django_db
def test_shortcode_defaults_to_dlt_for_india_only():
    assert ShortcodeFactory(country="IN", dlt_bound=None).requires_dlt is True
    assert ShortcodeFactory(country="US", dlt_bound=None).requires_dlt is False
    assert ShortcodeFactory(country="IN", dlt_bound=False).requires_dlt is False


# The registry each process keeps (commands.services): read once, read again after any edit.


@pytest.fixture
def staff_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def shortcode_page(shortcode, command, **changes) -> dict:
    """The shortcode's admin page as staff post it, with its one command's inline row."""
    data = {
        "number": shortcode.number,
        "name": shortcode.name,
        "active": "on",
        "country": "US",
        "provider": "console",
        "dlt_bound": "false",
        "dlt_header": "",
        "sender_id": "",
        "menu_text": shortcode.menu_text,
        "unknown_text": shortcode.unknown_text,
        "help_text": shortcode.help_text,
        "opt_out_reply": shortcode.opt_out_reply,
        "opt_in_reply": shortcode.opt_in_reply,
        "opt_out_keywords": "",
        "inbound_limit_per_minute": "20",
        "max_mps": "30",
        "segment_limit": "4",
        "session_ttl": "300",
        "catch_all_handler": "",
        "catch_all_config": "{}",
        "commands-TOTAL_FORMS": "1",
        "commands-INITIAL_FORMS": "1",
        "commands-0-id": str(command.pk),
        "commands-0-shortcode": str(shortcode.pk),
        "commands-0-code": command.code,
        "commands-0-name": command.name,
        "commands-0-handler_key": command.handler_key,
        "commands-0-active": "on",
    }
    return {key: value for key, value in {**data, **changes}.items() if value is not None}


@pytest.mark.parametrize(
    "changes,menu_text,found_by",
    [
        ({"menu_text": "Send 2 for your balance."}, "Send 2 for your balance.", {"2": True}),
        ({"commands-0-active": None}, None, {"2": False}),
        ({"commands-0-code": "5"}, None, {"2": False, "5": True}),
        ({"active": None}, None, {"2": True}),
    ],
    ids=["menu text", "command switched off", "code renamed", "shortcode switched off"],
)
def test_an_edit_in_the_admin_is_what_the_next_sms_finds(staff_client, changes, menu_text, found_by):
    # given: the registry read once, as the first SMS reads it
    shortcode = ShortcodeFactory(number="56161", country="US")
    command = CommandFactory(shortcode=shortcode, code="2", handler_key="reply")
    assert command_lookup(shortcode=shortcode_get(number="56161"), parsed=parse_text("2")) == command
    # when: staff edit the shortcode's page
    response = staff_client.post(
        f"/admin/commands/shortcode/{shortcode.pk}/change/", shortcode_page(shortcode, command, **changes)
    )
    assert response.status_code == 302
    # then: the next lookup sees the edit
    current = shortcode_get(number="56161")
    assert current.menu_text == (menu_text or shortcode.menu_text)
    assert current.active is ("active" in shortcode_page(shortcode, command, **changes))
    for word, found in found_by.items():
        assert (command_lookup(shortcode=current, parsed=parse_text(word)) is not None) is found


@pytest.mark.django_db
@pytest.mark.parametrize("edit", ["alias added", "alias deleted", "command deleted", "shortcode deleted"])
def test_saves_and_deletes_anywhere_in_the_registry_are_seen(edit):
    shortcode = ShortcodeFactory(number="56161")
    command = CommandFactory(shortcode=shortcode, code="2", aliases=["BAL"])
    assert command_lookup(shortcode=shortcode_get(number="56161"), parsed=parse_text("BAL")) == command
    if edit == "alias added":
        Alias.objects.create(command=command, keyword="CASH")
        assert command_lookup(shortcode=shortcode, parsed=parse_text("cash")) == command
    elif edit == "alias deleted":
        Alias.objects.filter(keyword="BAL").delete()
        assert command_lookup(shortcode=shortcode, parsed=parse_text("BAL")) is None
    elif edit == "command deleted":
        command.delete()
        assert command_lookup(shortcode=shortcode, parsed=parse_text("2")) is None
    else:
        shortcode.delete()
        assert shortcode_get(number="56161") is None


@pytest.mark.django_db
def test_the_registry_is_read_once_until_another_process_says_it_changed(django_assert_num_queries):
    # given: read once
    shortcode = ShortcodeFactory(number="56161")
    command = CommandFactory(shortcode=shortcode, code="2")
    assert command_lookup(shortcode=shortcode_get(number="56161"), parsed=parse_text("2")) == command
    # when: read again with nothing changed, then changed by another process (no signal here)
    with django_assert_num_queries(0):
        assert shortcode_get(number="56161") == shortcode
        assert command_lookup(shortcode=shortcode, parsed=parse_text("2")) == command
    Command.objects.filter(pk=command.pk).update(code="9")
    cache.set(REGISTRY_VERSION_KEY, "written-by-another-process")
    # then
    assert command_lookup(shortcode=shortcode, parsed=parse_text("2")) is None
    assert command_lookup(shortcode=shortcode, parsed=parse_text("9")).pk == command.pk

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.forms import inlineformset_factory

from commands.admin import AliasFormSet, CommandForm
from commands.checks import check_command_handlers
from commands.models import Alias, Command
from commands.parsing import parse_text
from commands.services import command_lookup, command_update
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

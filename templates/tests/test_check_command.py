"""dlt_check: prints the match with its DLT ID and values, or exits 1 with why none matches."""

import pytest
from django.core.management import CommandError, call_command

from templates.tests.factories import HeaderFactory, TemplateFactory


@pytest.fixture
def otp(db):
    header = HeaderFactory(sender_id="ACMEBK")
    return TemplateFactory(
        entity=header.entity,
        headers=[header],
        dlt_template_id="1107161000000000001",
        name="OTP",
        content="Dear {#var#}, your OTP is {#numeric#}. - ACME",
    )


@pytest.mark.django_db
def test_dlt_check_prints_the_template_and_values(otp, capsys):
    # when
    call_command("dlt_check", "--header", "ACMEBK", "Dear Ram, your OTP is 4821. - ACME")

    # then
    out = capsys.readouterr().out
    assert "Matches DLT template 1107161000000000001 (OTP)" in out
    assert f"entity (PE ID): {otp.entity.pe_id}" in out
    assert "value 1 {#var#}: Ram" in out
    assert "value 2 {#numeric#}: 4821" in out


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header,text,why",
    [
        (
            "ACMEBK",
            "Dear Ram, your OTP is 4821 - ACME",
            "at offset 26: expected '. - ACME' after value 2, found ' - ACME'. Here",
        ),
        ("ACMEBK", "Dear Ram, your OTP is 4821. - ACME.", "the template ends here but the text goes on with '.'"),
        ("acmebk", "Dear Ram, your OTP is 4821. - ACME", "headers are case-sensitive"),
    ],
)
def test_dlt_check_exits_1_with_why(otp, header, text, why):
    # when
    with pytest.raises(CommandError) as caught:
        call_command("dlt_check", "--header", header, text)

    # then
    assert caught.value.returncode == 1
    assert why in str(caught.value)
    if header == "ACMEBK":
        assert "Nearest: 1107161000000000001 ('OTP')" in str(caught.value)

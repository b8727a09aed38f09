"""templates_import_csv and dlt_import: per-row outcomes, duplicates, broken rows, dry run."""

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from templates.models import Header, PrincipalEntity, Template
from templates.services import ImportFileError, template_resolve, templates_import_csv

EXPORT = Path(__file__).parent / "fixtures" / "dlt_export.csv"

EXPECTED = [
    (2, "1107161000000000001", "created", ""),
    (3, "1107161000000000002", "created", ""),
    (4, "1107161000000000003", "created", ""),
    (5, "1107161000000000001", "rejected", "duplicate: template 1107161000000000001 is already on line 2"),
    (
        6,
        "1107161000000000004",
        "rejected",
        "content: Unknown placeholder {#numbr#} at offset 13; use one of {#var#}, {#numeric#}, {#alphanumeric#}, "
        "{#url#}, {#urlott#}, {#cbn#}, {#email#}.",
    ),
    (7, "1107161000000000005", "rejected", "status 'Pending' is not approved on the portal"),
    (8, "110716", "rejected", "dlt_template_id: A DLT ID is 12 to 19 digits, nothing else."),
    (
        9,
        "1107161000000000006",
        "rejected",
        "Header 654321 is promotional; a transactional template needs a service or transactional header.",
    ),
    (10, "1107161000000000007", "created", ""),
    (11, "1107161000000000008", "created", ""),
    (12, "1107161000000000009", "rejected", "unknown category 'Marketing'"),
]


def outcomes(report):
    return [(row.line, row.template_id, row.outcome, row.reason) for row in report.rows]


@pytest.mark.django_db
def test_import_creates_good_rows_and_rejects_duplicates_and_broken_ones():
    # when
    report = templates_import_csv(file=EXPORT, dry_run=False)

    # then
    assert outcomes(report) == EXPECTED
    assert report.summary() == "5 created, 0 updated, 6 rejected."
    entity = PrincipalEntity.objects.get()
    assert (entity.pe_id, entity.name) == ("1201159100000000042", "ACME Bank")
    assert dict(Header.objects.values_list("sender_id", "category")) == {
        "ACMEBK": "transactional",
        "ACMESV": "service",
        "ACMEAL": "service",
        "654321": "promotional",
    }
    balance = Template.objects.get(dlt_template_id="1107161000000000002")
    assert balance.category == "service_implicit"
    assert sorted(balance.headers.values_list("sender_id", flat=True)) == ["ACMEAL", "ACMESV"]
    assert Template.objects.get(dlt_template_id="1107161000000000007").status == "inactive"
    assert template_resolve(header="ACMEBK", text="प्रिय राम, आपका OTP 1234 है।").template_id == "1107161000000000008"


@pytest.mark.django_db
def test_a_portal_export_whose_others_header_carries_transactional_and_service_templates_loads_whole():
    # given: a portal export: one "others" header, transactional rows after a service one,
    # a business "Category" column beside the DLT "Template Type"
    export = Path(__file__).parent / "fixtures" / "dlt_export_portal.csv"

    # when
    report = templates_import_csv(file=export, dry_run=False)

    # then: every approved row is created
    assert [(r.line, r.outcome, r.reason) for r in report.rows] == [(line, "created", "") for line in range(2, 7)]
    assert dict(Template.objects.values_list("dlt_template_id", "category")) == {
        "1707170000000000101": "transactional",
        "1707170000000000102": "service_implicit",
        "1707170000000000103": "transactional",
        "1707170000000000104": "service_explicit",
        "1707170000000000105": "service_implicit",
    }
    assert list(Header.objects.values_list("sender_id", flat=True)) == ["SMSGTE"]
    assert template_resolve(header="SMSGTE", text="Hi Asha, your balance is Rs 12. - SMSGATE").matched
    otp = template_resolve(header="SMSGTE", text="Your OTP for login is 1234. Do not share it with anyone. - SMSGATE")
    assert otp.template_id == "1707170000000000101"


@pytest.mark.django_db
def test_a_service_template_on_an_existing_transactional_header_is_accepted():
    # given: the header came first with a transactional template
    text = (
        "Template ID,Template Content,Header,Template Type,Entity ID\n"
        "1107161000000000001,Your code is {#numeric#}.,ACMEBK,Transactional,1201159100000000001\n"
        "1107161000000000002,Your balance is {#numeric#}.,ACMEBK,Service Implicit,1201159100000000001\n"
        "1107161000000000003,Sale! {#numeric#}% off.,ACMEBK,Promotional,1201159100000000001\n"
    )

    # when
    report = templates_import_csv(file=text.encode(), dry_run=False)

    # then: a promotional template still needs a promotional header
    assert [(r.outcome, r.reason) for r in report.rows] == [
        ("created", ""),
        ("created", ""),
        ("rejected", "Header ACMEBK is transactional; a promotional template needs a promotional header."),
    ]


@pytest.mark.django_db
def test_dry_run_reports_the_same_and_saves_nothing():
    # when
    report = templates_import_csv(file=EXPORT, dry_run=True)

    # then
    assert outcomes(report) == EXPECTED
    assert report.summary().startswith("Dry run, nothing saved")
    assert not Template.objects.exists()
    assert not Header.objects.exists()
    assert not PrincipalEntity.objects.exists()
    assert not template_resolve(header="ACMEBK", text="Dear Ram, your OTP is 1. Do not share it. - ACME").matched


@pytest.mark.django_db
def test_importing_again_updates():
    # given
    templates_import_csv(file=EXPORT, dry_run=False)
    changed = EXPORT.read_text(encoding="utf-8-sig").replace("Do not share it. - ACME", "Never share it. - ACME")

    # when
    report = templates_import_csv(file=changed.encode(), dry_run=False)

    # then
    rows = {row.line: (row.outcome, row.reason) for row in report.rows}
    assert rows[2] == ("updated", "")
    assert rows[3] == ("updated", "no change")
    assert Template.objects.get(dlt_template_id="1107161000000000001").content.startswith("Dear {#var#}, your OTP")
    assert "Never share it" in Template.objects.get(dlt_template_id="1107161000000000001").content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "csv_text,message",
    [
        ("Template ID,Name\n1107161000000000001,x\n", "Missing column(s): 'Template Content'"),
        ("", "The file is empty."),
    ],
)
def test_a_file_without_the_needed_columns_is_refused(csv_text, message):
    with pytest.raises(ImportFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        templates_import_csv(file=io.BytesIO(csv_text.encode()), dry_run=True)


@pytest.mark.django_db
def test_columns_are_found_by_other_portal_names_and_any_case():
    # given: semicolons, other titles, a header owned by another entity
    text = (
        "CONTENT TEMPLATE ID;template content;HEADERS;content type;entity id\n"
        "1107161000000000001;Your code is {#numeric#}.;ACMEBK;Transactional;1201159100000000001\n"
        "1107161000000000002;Your pin is {#numeric#}.;ACMEBK;Transactional;1201159100000000002\n"
    )

    # when
    report = templates_import_csv(file=text.encode(), dry_run=False)

    # then
    assert [(r.outcome, r.reason) for r in report.rows] == [
        ("created", ""),
        ("rejected", "Header ACMEBK belongs to another entity."),
    ]


@pytest.mark.django_db
def test_dlt_import_command_prints_each_row(capsys):
    # when
    call_command("dlt_import", str(EXPORT), "--dry-run")

    # then
    out = capsys.readouterr().out
    assert "line 2: 1107161000000000001 created" in out
    assert "line 5: 1107161000000000001 rejected: duplicate: template 1107161000000000001 is already on line 2" in out
    assert "line 12: 1107161000000000009 rejected: unknown category 'Marketing'" in out
    assert "Dry run, nothing saved: would be 5 created, 0 updated, 6 rejected." in out
    assert not Template.objects.exists()


@pytest.mark.django_db
def test_dlt_import_command_saves_without_dry_run(capsys):
    # when
    call_command("dlt_import", str(EXPORT))

    # then
    assert "5 created, 0 updated, 6 rejected." in capsys.readouterr().out
    assert Template.objects.count() == 5


@pytest.mark.django_db
@pytest.mark.parametrize("path,message", [("/nonexistent/export.csv", "No such file"), (__file__, "Missing column")])
def test_dlt_import_command_fails_on_unreadable_files(path, message):
    with pytest.raises(CommandError, match=message):
        call_command("dlt_import", path)

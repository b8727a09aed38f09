"""template_resolve and the matcher: byte-for-byte fixed text, typed placeholders, the most specific wins, why."""

import pytest

from templates.matcher import MatchIndex, TemplateRow
from templates.models import Header, Template
from templates.services import template_resolve
from templates.tests.factories import HeaderFactory, PrincipalEntityFactory, TemplateFactory

OTP = "Dear {#var#}, your OTP is {#numeric#}. Do not share it with anyone. - ACME"


@pytest.fixture
def header(db):
    return HeaderFactory(sender_id="ACMEBK", entity=PrincipalEntityFactory(pe_id="1201159100000000042"))


def template(header, content, **kwargs):
    kwargs.setdefault("category", Template.Category.TRANSACTIONAL)
    return TemplateFactory(entity=header.entity, headers=[header], content=content, **kwargs)


@pytest.mark.django_db
def test_exact_match_returns_the_template_and_values(header):
    # given
    otp = template(header, OTP, dlt_template_id="1107161000000000001")

    # when
    result = template_resolve(header="ACMEBK", text="Dear Ram, your OTP is 4821. Do not share it with anyone. - ACME")

    # then
    assert result.matched
    assert result.template_id == otp.dlt_template_id
    assert result.entity_id == "1201159100000000042"
    assert result.category == "transactional"
    assert result.promotional is False
    assert result.values == ["Ram", "4821"]
    assert result.why == ""


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content,text,values",
    [
        (
            "Hi {#var#}, order {#alphanumeric#} of Rs {#numeric#} ships on {#var#}. Track: {#url#}",
            "Hi Asha, order AB 12 of Rs 1499 ships on 12-Mar-2025. Track: https://acme.in/t?o=AB12",
            ["Asha", "AB 12", "1499", "12-Mar-2025", "https://acme.in/t?o=AB12"],
        ),
        ("Call us on {#cbn#} or write to {#email#}.", "Call us on +91 98765 43210 or write to help@acme.in.", None),
        ("Watch {#urlott#} now.", "Watch http://acme.in/ott now.", ["http://acme.in/ott"]),
        ("Code {#var#}{#var#} is ready.", "Code " + "A" * 30 + "B" * 12 + " is ready.", None),
    ],
)
def test_several_and_typed_variables_match(header, content, text, values):
    # given
    template(header, content)

    # when
    result = template_resolve(header="ACMEBK", text=text)

    # then
    assert result.matched, result.why
    if values is not None:
        assert result.values == values
    assert "".join(result.values) in text.replace(" ", "") or all(v in text for v in result.values)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text,offset,reason",
    [
        # a variable over the 30-character limit
        (
            "Dear Ramakrishnan Venkataraman Subramaniam, your OTP is 4821. Do not share it with anyone. - ACME",
            35,
            "value 1 ({#var#}) would be 37 characters",
        ),
        # a typed placeholder given the wrong kind
        ("Dear Ram, your OTP is 48a1. Do not share it with anyone. - ACME", 24, "{#numeric#} takes digits 0-9 only"),
        ("Dear Ram, your OTP is four. Do not share it with anyone. - ACME", 22, "({#numeric#}) takes digits 0-9 only"),
        # a double space
        ("Dear Ram, your OTP is 4821. Do not  share it with anyone. - ACME", 35, "expected 'share it"),
        # a missing full stop at the end
        ("Dear Ram, your OTP is 4821. Do not share it with anyone. - ACM", 62, "the text ends where the template"),
        # trailing text
        ("Dear Ram, your OTP is 4821. Do not share it with anyone. - ACME Bank", 63, "the text goes on with ' Bank'"),
        # case is not tolerated
        ("Dear Ram, your OTP is 4821. Do Not share it with anyone. - ACME", 31, "expected 'not share"),
    ],
)
def test_a_miss_names_the_nearest_template_and_where_the_text_departs(header, text, offset, reason):
    # given
    otp = template(header, OTP, name="OTP")

    # when
    result = template_resolve(header="ACMEBK", text=text)

    # then
    assert not result.matched
    assert result.template_id == "" and result.values == []
    assert result.nearest_template_id == otp.dlt_template_id
    assert result.departs_at == offset
    assert f"Nearest: {otp.dlt_template_id} ('OTP')" in result.why
    assert f"at offset {offset}" in result.why
    assert reason in result.why
    assert "▶" in result.why


@pytest.mark.django_db
def test_a_curly_apostrophe_is_a_mismatch(header):
    # given
    template(header, "It's done, {#var#}. Thank you.")

    # when
    result = template_resolve(header="ACMEBK", text="It\u2019s done, Ram. Thank you.")

    # then
    assert not result.matched
    assert result.departs_at == 2
    assert "expected \"'s done, \", found '\u2019s done, Ram" in result.why


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content,text",
    [
        (
            "Pay Rs. {#numeric#} (incl. 18% GST) via [UPI]* + card? {#var#}",
            "Pay Rs. 120 (incl. 18% GST) via [UPI]* + card? ok",
        ),
        ("Win $100 ^today^ | {#var#} \\o/", "Win $100 ^today^ | now \\o/"),
    ],
)
def test_regex_characters_in_content_are_plain_text(header, content, text):
    # given
    template(header, content)

    # when
    hit = template_resolve(header="ACMEBK", text=text)
    near = template_resolve(header="ACMEBK", text=text.replace(".", "x", 1).replace("$", "S"))

    # then
    assert hit.matched, hit.why
    assert not near.matched


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content,text,values",
    [
        (
            "प्रिय {#alphanumeric#}, आपके खाते में {#numeric#} रुपये जमा हुए हैं।",
            "प्रिय राम कुमार, आपके खाते में 5000 रुपये जमा हुए हैं।",
            ["राम कुमार", "5000"],
        ),
        ("அன்புள்ள {#var#}, உங்கள் கடவுச்சொல் {#numeric#}.", "அன்புள்ள முருகன், உங்கள் கடவுச்சொல் 9911.", ["முருகன்", "9911"]),
    ],
)
def test_hindi_and_tamil_content(header, content, text, values):
    # given
    template(header, content)

    # when
    hit = template_resolve(header="ACMEBK", text=text)
    miss = template_resolve(header="ACMEBK", text=text[:-1])

    # then
    assert hit.matched, hit.why
    assert hit.values == values
    assert not miss.matched
    assert miss.departs_at == len(text) - 1


@pytest.mark.django_db
def test_when_two_templates_fit_the_most_specific_wins(header):
    # given: both fit; the second has more fixed text
    template(header, "Dear {#var#}, {#var#}", dlt_template_id="1107161000000000001")
    specific = template(header, "Dear {#var#}, your balance is Rs {#numeric#}.", dlt_template_id="1107161000000000009")

    # when
    result = template_resolve(header="ACMEBK", text="Dear Ram, your balance is Rs 120.")

    # then
    assert result.template_id == specific.dlt_template_id
    assert result.values == ["Ram", "120"]


@pytest.mark.django_db
def test_on_equal_fixed_text_fewer_variables_then_lowest_dlt_id_win(header):
    # given: same fixed text; one variable fewer wins, then the numerically lowest DLT ID
    template(header, "Ref {#var#}{#var#} done", dlt_template_id="1107161000000000001")
    lower = template(header, "Ref {#numeric#} done", dlt_template_id="900000000000")
    template(header, "Ref {#var#} done", dlt_template_id="1107161000000000002")

    # when
    result = template_resolve(header="ACMEBK", text="Ref 42 done")

    # then
    assert result.template_id == lower.dlt_template_id


@pytest.mark.django_db
def test_header_lookup_is_case_sensitive(header):
    # given
    template(header, OTP)

    # when
    result = template_resolve(header="acmebk", text="Dear Ram, your OTP is 4821. Do not share it with anyone. - ACME")

    # then
    assert not result.matched
    assert "case-sensitive" in result.why and "'ACMEBK'" in result.why


@pytest.mark.django_db
def test_inactive_templates_and_headers_do_not_match_and_say_so(header):
    # given
    template(header, "Your parcel {#var#} is out for delivery.", status=Template.Status.INACTIVE)
    other = HeaderFactory(sender_id="ACMEXX", entity=header.entity, active=False)
    template(other, OTP)

    # when
    inactive_template = template_resolve(header="ACMEBK", text="Your parcel P123 is out for delivery.")
    inactive_header = template_resolve(
        header="ACMEXX", text="Dear Ram, your OTP is 1. Do not share it with anyone. - ACME"
    )
    unknown = template_resolve(header="NOSUCH", text="hello")

    # then
    assert "inactive (DLT 631)" in inactive_template.why
    assert "Header ACMEXX is inactive" in inactive_header.why
    assert "DLT 620" in unknown.why


@pytest.mark.django_db
def test_consent_templates_are_never_matched(header):
    # given
    template(header, "ACME Bank asks your consent to send offers.", is_consent=True, category="promotional")

    # when
    result = template_resolve(header="ACMEBK", text="ACME Bank asks your consent to send offers.")

    # then
    assert not result.matched


@pytest.mark.django_db
def test_promotional_categories_are_flagged(db):
    # given: service-explicit is kept for old registrations and treated as promotional
    promo = HeaderFactory(sender_id="123456", category=Header.Category.PROMOTIONAL)
    template(promo, "Sale! {#numeric#}% off today.", category=Template.Category.SERVICE_EXPLICIT)

    # when
    result = template_resolve(header="123456", text="Sale! 40% off today.")

    # then
    assert result.matched and result.promotional
    assert result.category == "service_explicit"


@pytest.mark.django_db
def test_variable_limit_comes_from_settings(header, settings):
    # given
    settings.DLT_VARIABLE_MAX_LENGTH = 5
    template(header, "Code {#var#} ok")

    # when
    short = template_resolve(header="ACMEBK", text="Code 12345 ok")
    long = template_resolve(header="ACMEBK", text="Code 123456 ok")

    # then
    assert short.matched
    assert not long.matched and "the limit is 5" in long.why


@pytest.mark.django_db
def test_the_index_follows_changes_to_templates_and_headers(header):
    # given
    otp = template(header, "Your code is {#numeric#}.")
    assert template_resolve(header="ACMEBK", text="Your code is 12.").matched

    # when: the content changes
    otp.content = "Your code is {#numeric#}. - ACME"
    otp.save()

    # then
    assert not template_resolve(header="ACMEBK", text="Your code is 12.").matched
    assert template_resolve(header="ACMEBK", text="Your code is 12. - ACME").matched

    # when: the header is removed from the template
    otp.headers.clear()

    # then
    assert not template_resolve(header="ACMEBK", text="Your code is 12. - ACME").matched


def rows(*contents: str) -> list[TemplateRow]:
    return [
        TemplateRow(n, str(1107161000000000000 + n), "1201", f"t{n}", "transactional", content, ("ACMEBK",))
        for n, content in enumerate(contents, start=1)
    ]


def test_the_matcher_runs_without_a_database():
    # given
    index = MatchIndex(rows(OTP, "Hi {#var#}"), max_length=30)

    # when
    hit = index.match(header="ACMEBK", text="Hi Ram")
    miss = index.match(header="ACMEBK", text="Hey Ram")

    # then
    assert hit.values == ("Ram",)
    assert miss.departure.offset == 1
    assert "expected 'i '" in miss.why


def test_with_thousands_of_templates_the_right_one_is_found():
    # given: 5,000 templates sharing their beginning and their end
    contents = [f"Dear {{#var#}}, notice {n} for {{#numeric#}} is ready. - ACME" for n in range(5000)]
    index = MatchIndex(rows(*contents), max_length=30)

    # when
    hit = index.match(header="ACMEBK", text="Dear Ram, notice 4321 for 77 is ready. - ACME")
    miss = index.match(header="ACMEBK", text="Dear Ram, notice 4321 for 77 is  ready. - ACME")

    # then
    assert hit.row.name == "t4322"
    assert miss.nearest.name == "t4322"
    assert miss.departure.offset == 32

"""Validation: clean() for staff-facing messages, and the database constraints behind it."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from templates.models import Header, PrincipalEntity, Template
from templates.tests.factories import HeaderFactory, PrincipalEntityFactory, TemplateFactory


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content,message",
    [
        ("Your OTP is {#numeric#", "Unbalanced placeholder: '{#' at offset 12"),
        ("Your OTP is numeric#}.", "Unbalanced placeholder: '#}' at offset 19"),
        ("Your OTP is {#number#}.", "Unknown placeholder {#number#} at offset 12"),
        ("{#var#}{#var#}", "needs some fixed text"),
    ],
)
def test_content_must_have_balanced_known_placeholders(content, message):
    # given
    template = TemplateFactory.build(entity=PrincipalEntityFactory(), content=content)

    # when / then
    with pytest.raises(ValidationError) as caught:
        template.full_clean()
    assert any(message in m for m in caught.value.message_dict["content"])


@pytest.mark.django_db
@pytest.mark.parametrize("dlt_id", ["11071610000", "11071610000000000000", "1107-1610000000", "abcdefghijklm"])
def test_dlt_ids_are_12_to_19_digits(dlt_id):
    # given
    entity = PrincipalEntity(name="ACME", pe_id=dlt_id)
    template = TemplateFactory.build(entity=PrincipalEntityFactory(), dlt_template_id=dlt_id)

    # when / then
    with pytest.raises(ValidationError, match="12 to 19 digits"):
        entity.full_clean()
    with pytest.raises(ValidationError, match="12 to 19 digits"):
        template.full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sender_id,category,ok",
    [
        ("ACMEBK", Header.Category.TRANSACTIONAL, True),
        ("AcmeBk", Header.Category.SERVICE, True),
        ("123456", Header.Category.PROMOTIONAL, True),
        ("ACMEBK", Header.Category.PROMOTIONAL, True),
        ("123456", Header.Category.TRANSACTIONAL, False),
        ("ACME1K", Header.Category.SERVICE, False),
        ("ACMEBANK", Header.Category.TRANSACTIONAL, False),
        ("12345", Header.Category.PROMOTIONAL, False),
    ],
)
def test_header_shape_fits_its_category(sender_id, category, ok):
    # given
    header = Header(entity=PrincipalEntityFactory(), sender_id=sender_id, category=category)

    # when / then
    if ok:
        header.full_clean()
    else:
        with pytest.raises(ValidationError):
            header.full_clean()


@pytest.mark.django_db
def test_header_suffix_and_case_sensitive_uniqueness():
    # given
    entity = PrincipalEntityFactory()
    upper = HeaderFactory(entity=entity, sender_id="ACMEBK", category=Header.Category.SERVICE)

    # when
    lower = Header(entity=entity, sender_id="acmebk", category=Header.Category.PROMOTIONAL)
    lower.full_clean()
    lower.save()

    # then
    assert upper.display == "ACMEBK-S"
    assert lower.display == "acmebk-P"
    assert Header.objects.get(sender_id="acmebk") == lower


@pytest.mark.django_db
def test_header_must_fit_the_template_category_and_entity():
    # given
    entity = PrincipalEntityFactory()
    template = TemplateFactory(entity=entity, category=Template.Category.PROMOTIONAL, headers=[])
    service = HeaderFactory(entity=entity, sender_id="ACMESV", category=Header.Category.SERVICE)
    foreign = HeaderFactory(sender_id="OTHERS", category=Header.Category.PROMOTIONAL)
    promo = HeaderFactory(entity=entity, sender_id="654321", category=Header.Category.PROMOTIONAL)

    # when
    problems = template.header_errors([service, foreign, promo])

    # then
    assert problems == [
        "Header ACMESV is service; a promotional template needs a promotional header.",
        "Header OTHERS belongs to another entity.",
    ]


@pytest.mark.django_db
def test_consent_template_rules():
    # given
    entity = PrincipalEntityFactory()
    consent = TemplateFactory(entity=entity, is_consent=True, category="promotional", content="ACME offers. Agree?")
    promo = TemplateFactory.build(entity=entity, category="promotional", consent_template=consent)
    transactional = TemplateFactory.build(entity=entity, category="transactional", consent_template=consent)
    consent_with_var = TemplateFactory.build(entity=entity, is_consent=True, content="ACME {#var#} offers")

    # when / then
    promo.full_clean()
    with pytest.raises(ValidationError, match="Only promotional"):
        transactional.full_clean()
    with pytest.raises(ValidationError, match="no variables"):
        consent_with_var.full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "model,values",
    [
        (PrincipalEntity, {"name": "X", "pe_id": "12345"}),
        (Template, {"dlt_template_id": "110716abc0000000", "category": "transactional", "content": "x"}),
        (Template, {"dlt_template_id": "1107161000000000001", "category": "marketing", "content": "x"}),
        (Template, {"dlt_template_id": "1107161000000000001", "category": "transactional", "content": ""}),
    ],
)
def test_the_database_refuses_what_clean_refuses(model, values):
    # given
    if model is Template:
        values = {**values, "entity": PrincipalEntityFactory()}

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.create(**values)


@pytest.mark.django_db
def test_the_database_refuses_a_numeric_transactional_header():
    with pytest.raises(IntegrityError), transaction.atomic():
        Header.objects.create(entity=PrincipalEntityFactory(), sender_id="123456", category="transactional")

import factory

from templates.models import Header, PrincipalEntity, Template


class PrincipalEntityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PrincipalEntity
        django_get_or_create = ("pe_id",)

    name = factory.Sequence(lambda n: f"Brand {n}")
    pe_id = factory.Sequence(lambda n: f"{1201159100000000000 + n}")


class HeaderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Header
        django_get_or_create = ("sender_id",)

    entity = factory.SubFactory(PrincipalEntityFactory)
    sender_id = factory.Sequence(lambda n: "ACM" + "".join(chr(65 + (n // 26**i) % 26) for i in range(3)))
    category = Header.Category.TRANSACTIONAL


class TemplateFactory(factory.django.DjangoModelFactory):
    """A template with its headers (`headers=[...]`; default: one header of a fitting category)."""

    class Meta:
        model = Template
        skip_postgeneration_save = True

    entity = factory.SubFactory(PrincipalEntityFactory)
    dlt_template_id = factory.Sequence(lambda n: f"{1107161000000000000 + n}")
    name = factory.Sequence(lambda n: f"Template {n}")
    category = Template.Category.TRANSACTIONAL
    content = "Dear {#var#}, your OTP is {#numeric#}. Do not share it with anyone. - ACME"
    status = Template.Status.APPROVED

    @factory.post_generation
    def headers(self, create, extracted, **kwargs):
        if not create:
            return
        if extracted is None:
            from templates.services import HEADER_CATEGORY_FOR

            extracted = [HeaderFactory(entity=self.entity, category=HEADER_CATEGORY_FOR[self.category])]
        self.headers.set(extracted)


def dlt_registration(*contents: str, sender_id: str, category: str = Template.Category.SERVICE_IMPLICIT) -> Header:
    """
    A brand's DLT registration: a header of a fitting category and one approved template per
    content, all of one entity. Service-implicit by default, so the texts go out at any hour.
    """
    from templates.services import HEADER_CATEGORY_FOR

    header = HeaderFactory(sender_id=sender_id, category=HEADER_CATEGORY_FOR[category])
    for content in contents:
        TemplateFactory(entity=header.entity, category=category, content=content, headers=[header])
    return header

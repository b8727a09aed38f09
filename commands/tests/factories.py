import factory

from commands.models import Alias, Command, Shortcode


class ShortcodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Shortcode
        django_get_or_create = ("number",)

    number = factory.Sequence(lambda n: f"{57000 + n}")
    name = factory.Sequence(lambda n: f"Shortcode {n}")
    provider = "console"
    country = "IN"
    dlt_bound = False


class CommandFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Command
        skip_postgeneration_save = True

    shortcode = factory.SubFactory(ShortcodeFactory)
    code = factory.Sequence(lambda n: str(n + 1))
    name = factory.Sequence(lambda n: f"Command {n}")
    handler_key = "reply"
    config = factory.LazyAttribute(lambda o: {"text": f"reply to {o.code}"})

    @factory.post_generation
    def aliases(self, create, extracted, **kwargs):
        for keyword in extracted or []:
            Alias.objects.create(command=self, keyword=keyword)

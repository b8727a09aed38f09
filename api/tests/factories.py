import factory

from api.models import ApiClient
from commands.tests.factories import ShortcodeFactory


class ApiClientFactory(factory.django.DjangoModelFactory):
    """A client with a token (`client.token`, as shown once at creation) and its shortcodes (`shortcodes=[...]`)."""

    class Meta:
        model = ApiClient
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Client {n}")
    rate = "1000/min"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        client = model_class(*args, **kwargs)
        client.token = client.token_set()
        client.save()
        return client

    @factory.post_generation
    def shortcodes(self, create, extracted, **kwargs):
        if create:
            self.shortcodes.set(extracted if extracted is not None else [ShortcodeFactory()])

"""
Provider registry, built once: settings.SMS_PROVIDERS (slug -> class path), then the
configurable adapters (every delivery/providers/adapters/*.json under its file name,
and settings.SMS_ADAPTERS). Slugs are unique across both.
"""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from delivery.providers.adapter import load_adapters
from delivery.providers.base import Provider
from delivery.redaction import secret_settings_declare


class UnknownProvider(LookupError):
    pass


@cache
def _registry() -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for slug, path in settings.SMS_PROVIDERS.items():
        provider = import_string(path)()
        assert provider.slug == slug, f"{path} declares slug {provider.slug!r}, registered as {slug!r}"
        providers[slug] = provider
    for slug, adapter in load_adapters().items():
        assert slug not in providers, f"adapter {slug!r} clashes with SMS_PROVIDERS[{slug!r}]"
        providers[slug] = adapter
    for provider in providers.values():
        secret_settings_declare(*provider.SECRET_SETTINGS)
    return providers


def get_provider(slug: str) -> Provider:
    try:
        return _registry()[slug]
    except KeyError:
        raise UnknownProvider(slug) from None


def all_providers() -> list[Provider]:
    return list(_registry().values())


def detect_provider(request) -> Provider:
    """The provider a slug-less webhook (/sms-handler, /sms-dlr) came from; generic when none claims it."""
    for provider in all_providers():
        if provider.slug != "generic" and provider.receives_webhooks and provider.claims(request):
            return provider
    return get_provider("generic")

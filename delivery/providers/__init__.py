"""
Provider registry, built once: settings.SMS_PROVIDERS (slug -> class path), then the
configurable adapters (every delivery/providers/adapters/*.json under its file name,
and settings.SMS_ADAPTERS). Slugs are unique across both.
"""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from delivery.providers.adapter import load_adapters
from delivery.providers.base import Provider, WebhookForbidden, WebhookRequest
from delivery.redaction import secret_env_declare, secret_settings_declare


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
        secret_env_declare(*provider.SECRET_ENV)
        # deliver.callback_url puts <SLUG>_WEBHOOK_TOKEN, when set, in every provider's callback URL.
        secret_settings_declare(f"{provider.slug.upper()}_WEBHOOK_TOKEN")
    return providers


def get_provider(slug: str) -> Provider:
    try:
        return _registry()[slug]
    except KeyError:
        raise UnknownProvider(slug) from None


def provider_config_errors(provider: str, options: dict) -> list[str]:
    """
    What is wrong with a shortcode's provider options (settings.SHORTCODE_CONFIG_CHECK):
    an option the provider does not declare, a value of the wrong kind, an outbound URL off
    the allowed origins, a literal credential. Empty for an unknown provider, which the
    shortcode's own validation reports.
    """
    if not isinstance(options, dict):
        return ["provider options must be a JSON object"]
    try:
        return get_provider(provider).options_errors(options)
    except UnknownProvider:
        return []


def all_providers() -> list[Provider]:
    return list(_registry().values())


def detect_provider(webhook: WebhookRequest) -> Provider:
    """
    The provider a slug-less webhook (/sms-handler, /sms-dlr) is for, chosen by the
    credential the request presents (Provider.claims), never by the payload's shape.

    None presented: generic, whose rules refuse an unsigned request when WEBHOOK_SECRET
    is set. Several providers' credentials presented: WebhookForbidden, since no
    aggregator sends another's. The caller authenticates the chosen provider as on its
    own URL.
    """
    candidates = [provider for provider in all_providers() if provider.receives_webhooks and provider.claims(webhook)]
    if len(candidates) > 1:
        raise WebhookForbidden(f"credentials of several providers presented: {', '.join(p.slug for p in candidates)}")
    return candidates[0] if candidates else get_provider("generic")

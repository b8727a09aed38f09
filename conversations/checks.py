"""System checks that need both the service registry and the providers (`manage.py check --database default`)."""

from django.conf import settings
from django.core.checks import Warning
from django.db import DatabaseError

from commands.models import Shortcode
from delivery.providers import UnknownProvider, get_provider


def check_shortcode_providers(app_configs=None, databases=None, **kwargs):
    """
    smsgate.W002: every active shortcode's provider can send (its credentials are set).
    smsgate.W003: and accepts its webhooks (its webhook secret or token is set).

    Tagged `database`: it runs with `check --database default` and before `migrate`, never
    at import time without a database. Quiet with DEBUG on, where webhooks are open.
    """
    if settings.DEBUG or not databases:
        return []
    try:
        shortcodes = list(Shortcode.objects.filter(active=True).order_by("number").values_list("number", "provider"))
    except DatabaseError:
        # No table yet (before the first migrate): nothing to check.
        return []
    found = []
    for number, slug in shortcodes:
        where = f"Shortcode {number} (provider {slug!r})"
        try:
            provider = get_provider(slug)
        except UnknownProvider:
            found.append(
                Warning(
                    f"{where}: no such provider, so its replies cannot be sent.",
                    hint=f"Registered providers: {', '.join(settings.SMS_PROVIDER_SLUGS)}.",
                    obj=f"commands.Shortcode:{number}",
                    id="smsgate.W002",
                )
            )
            continue
        if refusal := provider.send_refusal():
            found.append(Warning(f"{where}: {refusal}.", obj=f"commands.Shortcode:{number}", id="smsgate.W002"))
        if refusal := provider.webhook_refusal():
            found.append(Warning(f"{where}: {refusal}.", obj=f"commands.Shortcode:{number}", id="smsgate.W003"))
    return found

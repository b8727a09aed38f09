"""
What the shortcode admin (commands/admin.py) shows that the service registry cannot know
itself: the options each provider declares, the approved DLT headers, whether a
configuration can reply (console.readiness), and the webhook URLs to paste into the
aggregator's console.

commands imports no other app, so its admin reaches this module by the name in
settings.SHORTCODE_SETUP. Everything here reads; nothing writes.
"""

import os
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.translation import gettext as _

from commands.models import Shortcode
from console.readiness import Problem, ReplyCheck, command_reply_checks, reply_checks, shortcode_readiness
from delivery.providers import UnknownProvider, get_provider
from delivery.providers.base import ProviderOption
from templates.models import Header, Template

CONSOLE = "console"

__all__ = [
    "Problem",
    "ReplyCheck",
    "WebhookUrl",
    "command_check",
    "env_is_set",
    "header_choices",
    "provider_options",
    "readiness",
    "reply_checks",
    "webhook_urls",
]


@dataclass(frozen=True)
class WebhookUrl:
    label: str  # "Inbound SMS", "Delivery reports"
    url: str
    note: str = ""  # how the aggregator must authenticate; never a secret's value


def provider_options(slug: str) -> tuple[ProviderOption, ...]:
    """The options `slug` declares (empty for an unknown provider)."""
    try:
        return tuple(get_provider(slug).OPTIONS)
    except UnknownProvider:
        return ()


def env_is_set(name: str) -> bool:
    """Whether the environment variable is set on this server; its value is never read out."""
    return bool(os.environ.get(name))


def header_choices() -> list[tuple[str, str]]:
    """Active DLT headers, each labelled with how phones show it, its entity and its approved templates."""
    approved = Q(templates__status=Template.Status.APPROVED, templates__is_consent=False)
    headers = (
        Header.objects.filter(active=True)
        .select_related("entity")
        .annotate(approved_total=Count("templates", filter=approved))
        .order_by("sender_id")
    )
    return [
        (
            header.sender_id,
            _("%(display)s · %(entity)s · %(count)s approved templates")
            % {"display": header.display, "entity": header.entity.name, "count": header.approved_total},
        )
        for header in headers
    ]


def readiness(shortcode: Shortcode) -> list[Problem]:
    return shortcode_readiness(shortcode)


def webhook_urls(slug: str, *, base_url: str) -> list[WebhookUrl]:
    """
    The URLs the aggregator posts to for `slug`, on PUBLIC_BASE_URL (else `base_url`, the
    page's own origin). Providers that sign nothing need `?token=`: the note names the
    setting that holds it and whether it is set, never its value.
    """
    try:
        provider = get_provider(slug)
    except UnknownProvider:
        return []
    base = settings.PUBLIC_BASE_URL or base_url.rstrip("/")
    if not provider.receives_webhooks and provider.slug != CONSOLE:
        note = _("%(slug)s receives over its own connection: there is no webhook to set.") % {"slug": slug}
        return [WebhookUrl(_("Inbound SMS and reports"), "", note)]
    # The console provider sends nothing and has no webhook: its shortcodes receive through
    # the generic one (conversations.handling.inbound_provider_allowed).
    receiving = provider if provider.receives_webhooks else get_provider("generic")
    token_setting = f"{receiving.slug.upper()}_WEBHOOK_TOKEN"
    uses_token = token_setting in receiving.WEBHOOK_SECRET_SETTINGS or token_setting in receiving.SECRET_SETTINGS
    if uses_token:
        query = "?token=…"
        note = _("Add ?token= with the value of %(setting)s (%(state)s).") % {
            "setting": token_setting,
            "state": _("set") if getattr(settings, token_setting, "") else _("not set: every webhook is refused"),
        }
    else:
        query = ""
        names = receiving.WEBHOOK_SECRET_SETTINGS
        state = ", ".join(f"{name} {_('set') if getattr(settings, name, '') else _('not set')}" for name in names)
        note = _("Signed with %(names)s (%(state)s).") % {"names": " or ".join(names), "state": state} if names else ""
    if receiving is not provider:
        note = (
            _("The %(slug)s provider receives nothing itself: point a test gateway at the generic webhook. ")
            % {"slug": slug}
            + note
        )
    return [
        WebhookUrl(
            _("Inbound SMS"), base + reverse("webhook-inbound", kwargs={"provider": receiving.slug}) + query, note
        ),
        WebhookUrl(
            _("Delivery reports"), base + reverse("webhook-status", kwargs={"provider": receiving.slug}) + query, note
        ),
    ]


def command_check(command) -> ReplyCheck:
    """Whether one command's reply passes DLT on its shortcode."""
    return command_reply_checks(command.shortcode, [command])[0]

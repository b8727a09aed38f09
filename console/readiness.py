"""
Can this shortcode reply? The checks staff see when they save one, before any phone finds out.

`shortcode_readiness` lists what stands between a shortcode and its replies. A blocking
problem means a reply can never leave as configured (a DLT-bound shortcode without an
approved header, one of its own texts matching no approved template, invalid provider
options): the admin refuses the save and shows it on the field. The others are warnings
(a provider credential unset, a command whose reply fails DLT, an environment variable
not set here), shown after the save, because the fix lies elsewhere (the deployment's
environment, a command's page, the DLT portal).

`reply_checks` is the table on the shortcode page: each text the shortcode itself sends
and each command's reply, with whether it passes DLT and, if not, why and the nearest
template. A reply a handler computes at run time cannot be checked before it is sent;
it is listed as such.

Everything here reads; nothing writes. The shortcode may be unsaved (a form being
validated): its commands are read only when it has a primary key.
"""

from dataclasses import dataclass, replace

from django.utils.translation import gettext as _

from commands.handlers import HANDLERS, UNAVAILABLE_REPLY
from commands.models import Command, Shortcode
from delivery.providers import UnknownProvider, get_provider
from templates.models import Header, Template
from templates.services import template_resolve

# The shortcode's own texts the pipeline sends, by form field, in the order the form shows them.
OWN_TEXTS = (
    ("menu_text", "menu reply"),
    ("unknown_text", "unknown code reply"),
    ("help_text", "help reply"),
    ("opt_out_reply", "opt-out confirmation"),
    ("opt_in_reply", "opt-in confirmation"),
)


@dataclass(frozen=True)
class Problem:
    message: str
    field: str = ""  # the shortcode form field it is about; "" for the shortcode as a whole
    blocking: bool = False  # True: refused on save, since no reply could leave as configured


@dataclass(frozen=True)
class ReplyCheck:
    """One reply the shortcode may send, checked against DLT."""

    label: str  # "menu reply", "command 2 · Balance"
    text: str  # the text checked; "" when a handler computes it at run time
    passes: bool | None  # None: not known before it is sent
    why: str = ""  # why it fails, or how it is known
    template_id: str = ""  # the matching template, or the nearest one when it fails
    command_id: int | None = None


def shortcode_readiness(shortcode: Shortcode) -> list[Problem]:
    """What stands between `shortcode` and its replies, blocking problems first."""
    problems = [*_provider_problems(shortcode), *_dlt_problems(shortcode), *_handler_problems(shortcode)]
    if shortcode.pk is not None:
        problems.extend(
            Problem(_("%(label)s: its reply fails DLT: %(why)s") % {"label": check.label, "why": check.why})
            for check in command_reply_checks(shortcode, shortcode.commands.filter(active=True).order_by("code"))
            if check.passes is False
        )
        if not shortcode.commands.filter(active=True).exists():
            problems.append(Problem(_("No active command: every code gets the unknown code reply.")))
    return sorted(problems, key=lambda problem: not problem.blocking)


def reply_checks(shortcode: Shortcode) -> list[ReplyCheck]:
    """The shortcode's own texts, then each of its commands' replies, checked against DLT."""
    return [*own_text_checks(shortcode), *command_reply_checks(shortcode)]


def own_text_checks(shortcode: Shortcode) -> list[ReplyCheck]:
    texts = [(label, getattr(shortcode, name)) for name, label in OWN_TEXTS]
    texts.append((_("reply when a service fails"), UNAVAILABLE_REPLY))
    return [_text_check(shortcode, label, text) for label, text in texts]


def command_reply_checks(shortcode: Shortcode, commands=None) -> list[ReplyCheck]:
    """Each command's reply (all of the shortcode's commands unless `commands` is given)."""
    if commands is None:
        commands = Command.objects.filter(shortcode=shortcode).order_by("code") if shortcode.pk else []
    return [_command_check(shortcode, command) for command in commands]


def _command_check(shortcode: Shortcode, command: Command) -> ReplyCheck:
    label = f"command {command.code} · {command.name}" + ("" if command.active else _(" (inactive)"))
    config = command.config if isinstance(command.config, dict) else {}
    if config.get("template"):
        return _template_check(shortcode, label, str(config["template"]), command.pk)
    if command.handler_key == "reply":
        return replace(_text_check(shortcode, label, str(config.get("text", ""))), command_id=command.pk)
    return ReplyCheck(
        label=label,
        text="",
        passes=None if shortcode.requires_dlt else True,
        why=_("computed by the %(handler)s handler when it runs; checked when it is sent")
        % {"handler": command.handler_key}
        if shortcode.requires_dlt
        else _("not DLT-bound"),
        command_id=command.pk,
    )


def _text_check(shortcode: Shortcode, label: str, text: str) -> ReplyCheck:
    if not shortcode.requires_dlt:
        return ReplyCheck(label=label, text=text, passes=True, why=_("not DLT-bound"))
    resolution = template_resolve(header=shortcode.sender, text=text)
    if resolution.matched:
        return ReplyCheck(label=label, text=text, passes=True, template_id=resolution.template_id)
    return ReplyCheck(
        label=label, text=text, passes=False, why=resolution.why, template_id=resolution.nearest_template_id
    )


def _template_check(shortcode: Shortcode, label: str, template_id: str, command_id: int | None) -> ReplyCheck:
    """A command that replies through a named template: it must be approved, and (DLT-bound) on the header."""
    template = Template.objects.filter(dlt_template_id=template_id).first()
    if template is None or template.status != Template.Status.APPROVED:
        why = _("template %(id)s is not an approved template") % {"id": template_id}
        return ReplyCheck(label, "", False, why, template_id, command_id)
    if shortcode.requires_dlt and not template.headers.filter(sender_id=shortcode.sender, active=True).exists():
        why = _("template %(id)s is not approved for header %(header)s") % {
            "id": template_id,
            "header": shortcode.sender,
        }
        return ReplyCheck(label, template.content, False, why, template_id, command_id)
    return ReplyCheck(
        label, template.content, True, _("renders template %(id)s") % {"id": template_id}, template_id, command_id
    )


def _provider_problems(shortcode: Shortcode) -> list[Problem]:
    try:
        provider = get_provider(shortcode.provider)
    except UnknownProvider:
        return [Problem(_("Unknown provider %(slug)s.") % {"slug": shortcode.provider}, "provider", blocking=True)]
    options = shortcode.provider_config if isinstance(shortcode.provider_config, dict) else {}
    problems = [Problem(error, "provider", blocking=True) for error in provider.options_errors(options)]
    refusal = provider.send_refusal()
    if refusal:
        problems.append(Problem(_("Replies cannot be sent: %(why)s.") % {"why": refusal}, "provider"))
    refusal = provider.webhook_refusal()
    if refusal:
        problems.append(Problem(_("No SMS can arrive: %(why)s.") % {"why": refusal}, "provider"))
    for name in provider.options_env_unset(options):
        problems.append(Problem(_("Environment variable %(name)s is not set here.") % {"name": name}, "provider"))
    return problems


def _dlt_problems(shortcode: Shortcode) -> list[Problem]:
    if not shortcode.requires_dlt:
        return []
    sender = shortcode.sender
    header = Header.objects.filter(sender_id=sender).first()
    if header is None:
        why = _(
            "DLT-bound, but %(sender)s is no registered DLT header, so every reply would be refused. "
            "Choose the approved header replies are sent from."
        ) % {"sender": sender}
        return [Problem(why, "sender_id", blocking=True)]
    if not header.active:
        why = _("Header %(sender)s is inactive: every reply would be refused.") % {"sender": sender}
        return [Problem(why, "sender_id", blocking=True)]
    approved = header.templates.filter(status=Template.Status.APPROVED, is_consent=False)
    if not approved.exists():
        why = _("Header %(sender)s has no approved template: every reply would be refused.") % {"sender": sender}
        return [Problem(why, "sender_id", blocking=True)]
    problems = []
    for (name, label), check in zip(OWN_TEXTS, own_text_checks(shortcode), strict=False):
        if check.passes is False:
            why = _("The %(label)s would be refused: %(why)s") % {"label": _(label), "why": check.why}
            problems.append(Problem(why, name, blocking=True))
    unavailable = _text_check(shortcode, "", UNAVAILABLE_REPLY)
    if unavailable.passes is False:
        problems.append(
            Problem(
                _("The reply sent when a service fails (%(text)s) matches no approved template: %(why)s")
                % {"text": UNAVAILABLE_REPLY, "why": unavailable.why}
            )
        )
    return problems


def _handler_problems(shortcode: Shortcode) -> list[Problem]:
    if shortcode.catch_all_handler and shortcode.catch_all_handler not in HANDLERS:
        why = _("Handler %(key)s is not registered.") % {"key": shortcode.catch_all_handler}
        return [Problem(why, "catch_all_handler", blocking=True)]
    return []

"""
The service registry's admin: shortcodes (every setting, grouped), their commands and aliases.

A shortcode's page shows what the registry cannot know by itself: each provider's
declared options as real fields, the approved DLT headers, whether the configuration can
reply, and the webhook URLs for the aggregator's console. Those facts live in other apps,
which this one does not import: the module settings.SHORTCODE_SETUP names
(console.shortcode_setup) supplies them, so this file stays the one place the forms are
declared.
"""

from importlib import import_module

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from commands.handlers import HANDLERS, handler_choices
from commands.models import Alias, Command, Shortcode
from commands.services import command_update, command_validate_keywords

OPTION_PREFIX = "option__"
# Mapping options are typed as "ours=theirs" pairs, one per line or comma-separated.
MAPPING_HELP = _("One 'our name=their field' pair per line, e.g. dlt_template_id=template_id.")


def shortcode_setup():
    """The module that knows providers, DLT headers and readiness (settings.SHORTCODE_SETUP)."""
    return import_module(settings.SHORTCODE_SETUP)


def provider_choices():
    return [(slug, slug) for slug in settings.SMS_PROVIDER_SLUGS]


def catch_all_choices():
    return [("", _("none: the unknown code reply")), *handler_choices()]


def header_choices():
    return [("", "---------"), *shortcode_setup().header_choices()]


def option_field_name(slug: str, name: str) -> str:
    return f"{OPTION_PREFIX}{slug}__{name}"


class MappingField(forms.CharField):
    """A dict of field names typed as `key=value` pairs; only the declared keys are accepted."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40})

    def __init__(self, *, keys: tuple[str, ...], **kwargs):
        self.keys = keys
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict):
            return "\n".join(f"{key}={field}" for key, field in value.items())
        return value

    def to_python(self, value):
        text = super().to_python(value)
        mapping = {}
        for pair in text.replace(",", "\n").splitlines():
            if not pair.strip():
                continue
            key, sep, field = (part.strip() for part in pair.partition("="))
            if not sep or not key or not field:
                raise ValidationError(_("Write each pair as name=field: %(pair)s"), params={"pair": pair.strip()})
            if key not in self.keys:
                raise ValidationError(
                    _("%(key)s is not one of %(keys)s."), params={"key": key, "keys": ", ".join(self.keys)}
                )
            mapping[key] = field
        return mapping


def option_form_field(option) -> forms.Field:
    """The form field for one declared provider option (delivery.providers.base.ProviderOption)."""
    common = {"label": option.label, "required": False, "help_text": option.help_text}
    if option.kind == "url":
        return forms.URLField(assume_scheme="https", **common)
    if option.kind == "int":
        return forms.IntegerField(min_value=option.min_value, max_value=option.max_value, **common)
    if option.kind == "bool":
        return forms.BooleanField(**common)
    if option.kind == "choice":
        return forms.ChoiceField(choices=[("", "---------"), *option.choices], **common)
    if option.kind == "mapping":
        return MappingField(
            keys=option.keys, help_text=f"{option.help_text} {MAPPING_HELP}", label=option.label, required=False
        )
    if option.kind == "env":
        common["help_text"] = f"{option.help_text} " + _("The variable's name, never its value.")
    return forms.CharField(max_length=200, **common)


def provider_option_fields() -> dict[str, forms.Field]:
    """A form field per option of every provider, named option__<provider>__<option>."""
    setup = shortcode_setup()
    return {
        option_field_name(slug, option.name): option_form_field(option)
        for slug in settings.SMS_PROVIDER_SLUGS
        for option in setup.provider_options(slug)
    }


class DltBoundSelect(forms.NullBooleanSelect):
    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.choices = [("unknown", _("By country: yes for IN")), ("true", _("Yes")), ("false", _("No"))]


class ShortcodeForm(forms.ModelForm):
    """
    Every shortcode setting. Provider options are the fields of the chosen provider's
    declared options (the others are ignored), saved as `provider_config`; the sender of a
    DLT-bound shortcode is chosen from the approved headers. Saving is refused, with the
    reason on the field, when the configuration could never reply (console.readiness).
    """

    provider = forms.ChoiceField(label=_("Provider"), choices=provider_choices)
    dlt_bound = forms.NullBooleanField(
        label=_("DLT-bound"),
        required=False,
        widget=DltBoundSelect,
        help_text=_("Replies must match an approved DLT template of the header they are sent from."),
    )
    dlt_header = forms.ChoiceField(
        label=_("DLT header"),
        required=False,
        choices=header_choices,
        help_text=_("DLT-bound shortcodes: the approved header (sender ID) replies are sent from."),
    )
    sender_id = forms.CharField(
        label=_("Sender ID"),
        required=False,
        max_length=11,
        help_text=_("Shortcodes that are not DLT-bound: the sender replies carry; empty: the shortcode number."),
    )
    catch_all_handler = forms.ChoiceField(label=_("Catch-all handler"), required=False, choices=catch_all_choices)

    class Meta:
        model = Shortcode
        fields = (
            "number",
            "name",
            "active",
            "country",
            "provider",
            "dlt_bound",
            "sender_id",
            "menu_text",
            "unknown_text",
            "help_text",
            "opt_out_keywords",
            "opt_out_reply",
            "opt_in_reply",
            "inbound_limit_per_minute",
            "max_mps",
            "segment_limit",
            "session_ttl",
            "catch_all_handler",
            "catch_all_config",
        )
        widgets = {
            name: forms.Textarea(attrs={"rows": 2, "cols": 60})
            for name in ("menu_text", "unknown_text", "help_text", "opt_out_reply", "opt_in_reply")
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dropped_options: list[str] = []
        setup = shortcode_setup()
        instance = self.instance
        config = instance.provider_config if isinstance(instance.provider_config, dict) else {}
        for slug in settings.SMS_PROVIDER_SLUGS:
            for option in setup.provider_options(slug):
                name = option_field_name(slug, option.name)
                if name not in self.fields:
                    continue
                value = config.get(option.name) if slug == instance.provider else None
                self.initial.setdefault(name, option.default if value is None else value)
                if option.kind == "env" and slug == instance.provider and value:
                    state = _("set on this server") if setup.env_is_set(str(value)) else _("NOT set on this server")
                    self.fields[name].help_text += f" {value}: {state}."
        if instance.pk and instance.requires_dlt:
            self.initial.setdefault("dlt_header", instance.sender_id)

    def clean(self):
        cleaned = super().clean()
        provider = cleaned.get("provider")
        if provider:
            saved = self.instance.provider_config if isinstance(self.instance.provider_config, dict) else {}
            self.instance.provider_config = self._provider_config(provider)
            # Keys saved before options were declared have no field: they go, and staff are told.
            declared = {option.name for option in shortcode_setup().provider_options(provider)}
            self.dropped_options = sorted(set(saved) - declared) if provider == self.initial.get("provider") else []
        catch_all_config = cleaned.get("catch_all_config")
        if catch_all_config is not None and not isinstance(catch_all_config, dict):
            self.add_error("catch_all_config", _("Write the catch-all options as a JSON object, e.g. {}."))
        dlt_bound = cleaned.get("dlt_bound")
        country = (cleaned.get("country") or "").upper()
        if dlt_bound if dlt_bound is not None else country == "IN":
            if cleaned.get("dlt_header"):
                cleaned["sender_id"] = cleaned["dlt_header"]
            else:
                self.add_error(
                    "dlt_header",
                    _("A DLT-bound shortcode sends from an approved DLT header: choose one (add it under DLT first)."),
                )
        registered = HANDLERS.get(cleaned.get("catch_all_handler") or "")
        if registered is not None and registered.validate_config is not None:
            try:
                registered.validate_config(cleaned.get("catch_all_config") or {})
            except ValidationError as exc:
                self.add_error("catch_all_config", exc)
        return cleaned

    def _provider_config(self, provider: str) -> dict:
        """The chosen provider's options from their fields; empty ones are left out (the provider's default)."""
        config = {}
        for option in shortcode_setup().provider_options(provider):
            value = self.cleaned_data.get(option_field_name(provider, option.name))
            if value in (None, "", {}) or (option.kind == "bool" and value is False and not option.default):
                continue
            config[option.name] = value
        return config

    def _update_errors(self, errors):
        # The model checks provider_config, which this form edits through the option fields:
        # a message about one option ("'host' is required", "outbound_url: ...") goes on its field.
        if hasattr(errors, "error_dict") and "provider_config" in errors.error_dict:
            provider = self.cleaned_data.get("provider", "")
            for error in errors.error_dict.pop("provider_config"):
                field = self._option_field_of(provider, " ".join(error.messages))
                errors.error_dict.setdefault(field, []).append(error)
        super()._update_errors(errors)

    def _option_field_of(self, provider: str, message: str) -> str:
        for option in shortcode_setup().provider_options(provider):
            if message.startswith((f"'{option.name}'", f"{option.name}:")):
                return option_field_name(provider, option.name)
        return "provider"

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        dlt = self.instance.requires_dlt
        for problem in shortcode_setup().readiness(self.instance):
            if not problem.blocking:
                continue
            field = "dlt_header" if problem.field == "sender_id" and dlt else problem.field
            self.add_error(field if field in self.fields else None, problem.message)


def shortcode_form_class() -> type[ShortcodeForm]:
    """ShortcodeForm with a declared field per provider option (providers are known once settings are)."""
    return type("ShortcodeForm", (ShortcodeForm,), provider_option_fields())


class CommandForm(forms.ModelForm):
    handler_key = forms.ChoiceField(label=_("handler"), choices=handler_choices)

    class Meta:
        model = Command
        fields = ("shortcode", "code", "name", "active", "handler_key", "config")


class AliasFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        keywords = [
            form.cleaned_data["keyword"].strip().upper()
            for form in self.forms
            if form.cleaned_data.get("keyword") and not form.cleaned_data.get("DELETE")
        ]
        if len(keywords) != len(set(keywords)):
            raise ValidationError(_("The same alias is listed twice."))
        if self.instance.code and self.instance.code.upper() in keywords:
            raise ValidationError(_("An alias repeats the command's own code."))
        command_validate_keywords(command=self.instance, keywords=keywords)


class AliasInline(admin.TabularInline):
    model = Alias
    formset = AliasFormSet
    extra = 1


class CommandInlineForm(CommandForm):
    """A command's row on its shortcode's page: handler options are edited on the command's own page."""

    class Meta(CommandForm.Meta):
        fields = ("code", "name", "handler_key", "active")

    def _update_errors(self, errors):
        # Command.clean may speak of a field this row does not show (its handler options):
        # said on the row, not lost (Django would raise on an error for an absent field).
        if hasattr(errors, "error_dict"):
            for field in [name for name in errors.error_dict if name not in self.fields and name != NON_FIELD_ERRORS]:
                label = Command._meta.get_field(field).verbose_name
                for message in ValidationError(errors.error_dict.pop(field)).messages:
                    errors.error_dict.setdefault(NON_FIELD_ERRORS, []).append(ValidationError(f"{label}: {message}"))
        super()._update_errors(errors)


class CommandInline(admin.TabularInline):
    model = Command
    form = CommandInlineForm
    fields = ("code", "name", "handler_key", "active")
    extra = 0
    show_change_link = True


@admin.register(Shortcode)
class ShortcodeAdmin(admin.ModelAdmin):
    list_display = (
        "number",
        "name",
        "provider",
        "country",
        "sender_id",
        "active",
        "command_count",
        "session_ttl",
    )
    list_filter = ("active", "provider", "country")
    search_fields = ("number", "name")
    inlines = (CommandInline,)
    fieldsets = (
        (None, {"fields": ("number", "name", "active", "country")}),
        (
            _("Provider"),
            {
                "fields": ("provider",),
                "description": _("The gateway replies leave through. Its options appear below it."),
            },
        ),
        (
            _("Sender and DLT"),
            {
                "fields": ("dlt_bound", "dlt_header", "sender_id"),
                "classes": ("shortcode-sender",),
                "description": _(
                    "India: every reply must match an approved template of the header it is sent from, "
                    "or it is refused."
                ),
            },
        ),
        (_("Replies"), {"fields": ("menu_text", "unknown_text", "help_text")}),
        (
            _("Opt-out"),
            {
                "fields": ("opt_out_keywords", "opt_out_reply", "opt_in_reply"),
                "description": _("STOP and START words are always understood; add your own here."),
            },
        ),
        (_("Limits"), {"fields": ("inbound_limit_per_minute", "max_mps", "segment_limit", "session_ttl")}),
        (
            _("Catch-all"),
            {
                "fields": ("catch_all_handler", "catch_all_config"),
                "description": _("Free text that matches no code goes to this handler instead of the unknown reply."),
            },
        ),
    )

    def get_fieldsets(self, request, obj=None):
        # One fieldset per provider with options, right after the provider; the page's
        # script shows only the chosen provider's (without it, each is titled by provider).
        setup = shortcode_setup()
        option_sets = [
            (
                _("%(provider)s options") % {"provider": slug},
                {
                    "fields": tuple(option_field_name(slug, option.name) for option in options),
                    "classes": ("provider-options", f"provider-options-{slug}"),
                },
            )
            for slug in settings.SMS_PROVIDER_SLUGS
            if (options := setup.provider_options(slug))
        ]
        return (*self.fieldsets[:2], *option_sets, *self.fieldsets[2:])

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = shortcode_form_class()
        return super().get_form(request, obj, change=change, **kwargs)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(command_total=Count("commands"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        shortcode = self.get_object(request, admin.utils.unquote(object_id))
        if shortcode is not None:
            setup = shortcode_setup()
            extra_context = {
                **(extra_context or {}),
                "webhook_urls": setup.webhook_urls(shortcode.provider, base_url=request.build_absolute_uri("/")),
                "readiness_problems": setup.readiness(shortcode),
                "reply_checks": setup.reply_checks(shortcode),
                "requires_dlt": shortcode.requires_dlt,
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if form.dropped_options:
            messages.warning(
                request,
                _("Removed options %(names)s: %(provider)s does not declare them.")
                % {"names": ", ".join(form.dropped_options), "provider": form.instance.provider},
            )
        # Blocking problems refused the save; what is left is for staff to fix elsewhere.
        for problem in shortcode_setup().readiness(form.instance):
            messages.warning(request, problem.message)

    @admin.display(description=_("commands"), ordering="command_total")
    def command_count(self, obj):
        return obj.command_total


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    form = CommandForm
    list_display = ("code", "name", "shortcode", "handler_key", "alias_list", "active")
    list_filter = ("active", "handler_key", "shortcode")
    search_fields = ("code", "name", "aliases__keyword", "shortcode__number")
    list_select_related = ("shortcode",)
    inlines = (AliasInline,)
    fieldsets = (
        (_("Routing"), {"fields": ("shortcode", "code", "name", "active")}),
        (_("Handler"), {"fields": ("handler_key", "config")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("aliases")

    def save_model(self, request, obj, form, change):
        # Through the service, so the admin and code validate a command the same way;
        # the alias inline is saved (and validated by AliasFormSet) right after.
        command_update(command=obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        check = shortcode_setup().command_check(form.instance)
        if check.passes is False:
            messages.warning(
                request,
                _("Its reply fails DLT on shortcode %(number)s: %(why)s")
                % {"number": form.instance.shortcode.number, "why": check.why},
            )

    @admin.display(description=_("aliases"))
    def alias_list(self, obj):
        return ", ".join(alias.keyword for alias in obj.aliases.all())

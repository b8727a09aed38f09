from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from commands.handlers import handler_choices
from commands.models import Alias, Command, Shortcode
from commands.services import command_update, command_validate_keywords


def provider_choices():
    return [(slug, slug) for slug in settings.SMS_PROVIDER_SLUGS]


class ShortcodeForm(forms.ModelForm):
    provider = forms.ChoiceField(choices=provider_choices)

    class Meta:
        model = Shortcode
        fields = (
            "number",
            "name",
            "active",
            "country",
            "provider",
            "provider_config",
            "menu_text",
            "unknown_text",
            "help_text",
            "session_ttl",
        )


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


class CommandInline(admin.TabularInline):
    model = Command
    form = CommandForm
    fields = ("code", "name", "handler_key", "active")
    extra = 0
    show_change_link = True


@admin.register(Shortcode)
class ShortcodeAdmin(admin.ModelAdmin):
    form = ShortcodeForm
    list_display = (
        "number",
        "name",
        "provider",
        "country",
        "active",
        "command_count",
        "session_ttl",
    )
    list_filter = ("active", "provider", "country")
    search_fields = ("number", "name")
    inlines = (CommandInline,)
    fieldsets = (
        (None, {"fields": ("number", "name", "active", "country")}),
        (_("Gateway"), {"fields": ("provider", "provider_config")}),
        (_("Replies"), {"fields": ("menu_text", "unknown_text", "help_text")}),
        (_("Conversations"), {"fields": ("session_ttl",)}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(command_total=Count("commands"))

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

    @admin.display(description=_("aliases"))
    def alias_list(self, obj):
        return ", ".join(alias.keyword for alias in obj.aliases.all())

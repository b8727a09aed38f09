"""
Flows, built in the admin: the flow, its steps and its choice options on one page.

Steps and options are inlines of the flow; before anything is saved, the whole
definition as submitted (the flow's fields, the steps and options not being deleted) is
checked by `flow_problems`, and every problem is shown above the steps. A flow is saved
whole or not at all.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from conversations.flows import definition_build, flow_problems
from conversations.models import Flow, FlowStep, FlowStepOption


def _kept_instances(formset) -> list:
    """The objects a valid formset is about to keep: filled or saved rows not marked for deletion."""
    deleted = set(map(id, formset.deleted_forms))
    return [
        form.instance for form in formset.forms if (form.has_changed() or form.instance.pk) and id(form) not in deleted
    ]


class FlowStepFormSet(forms.BaseInlineFormSet):
    """Validates the flow's definition as submitted: its steps (here) with the options inline's rows."""

    def clean(self):
        super().clean()
        siblings = getattr(self, "flow_formsets", [])
        options = next((f for f in siblings if f.model is FlowStepOption), None)
        if any(self.errors) or options is None or not options.is_valid():
            return  # their own errors come first
        definition = definition_build(_kept_instances(self), _kept_instances(options))
        problems = flow_problems(self.instance, definition)
        if problems:
            raise ValidationError(problems)


class FlowStepInline(admin.StackedInline):
    model = FlowStep
    formset = FlowStepFormSet
    extra = 0
    ordering = ("position", "id")
    fields = (
        ("position", "key", "answer_key"),
        "prompt",
        ("prompt_template", "template_values"),
        ("input_kind", "pattern"),
        "error_reply",
        ("retry_limit", "next_step"),
    )


class FlowStepOptionInline(admin.TabularInline):
    model = FlowStepOption
    extra = 0
    ordering = ("step_key", "position", "id")
    fields = ("step_key", "position", "value", "label", "next_step")


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "shortcode", "completion_action", "session_ttl", "active", "updated_at")
    list_filter = ("active", "completion_action", "shortcode")
    search_fields = ("name", "=slug")
    list_select_related = ("shortcode",)
    prepopulated_fields = {"slug": ("name",)}
    inlines = (FlowStepInline, FlowStepOptionInline)
    fieldsets = (
        (None, {"fields": ("shortcode", "name", "slug", "active")}),
        (
            _("Session"),
            {"fields": ("session_ttl", "timeout_reply", "cancel_keywords", "cancel_reply", "give_up_reply")},
        ),
        (
            _("Completion"),
            {
                "fields": (
                    "completion_action",
                    "completion_reply",
                    "endpoint_url",
                    "secret_env",
                    ("endpoint_timeout", "endpoint_retries"),
                    "task_name",
                )
            },
        ),
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "endpoint_url":
            kwargs["assume_scheme"] = "https"  # "example.com/hook" means https, as Django 6 will read it
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def _create_formsets(self, request, obj, change):
        # Django validates each inline alone; the steps inline needs the options inline's
        # rows to check the definition as a whole, so each formset is told its siblings.
        formsets, inline_instances = super()._create_formsets(request, obj, change)
        for formset in formsets:
            formset.flow_formsets = formsets
        return formsets, inline_instances

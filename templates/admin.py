from django import forms
from django.contrib import admin, messages
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _

from templates.content import parse_content, placeholders
from templates.importing import ImportFileError, read_text
from templates.models import Header, PrincipalEntity, Template
from templates.services import ImportRow, template_resolve, templates_import_csv

IMPORT_SALT = "templates.admin.import"
# The CSV travels from the preview to the confirmation inside the page, signed so the rows
# confirmed are exactly the rows previewed; a preview left open longer than this is refused.
IMPORT_MAX_AGE_SECONDS = 3600
IMPORT_MAX_BYTES = 2 * 1024 * 1024


@admin.register(PrincipalEntity)
class PrincipalEntityAdmin(admin.ModelAdmin):
    list_display = ("name", "pe_id", "header_count", "template_count", "updated_at")
    search_fields = ("name", "=pe_id")
    search_help_text = _("Name, or the exact PE ID.")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(header_total=Count("headers", distinct=True), template_total=Count("templates", distinct=True))
        )

    @admin.display(description=_("headers"), ordering="header_total")
    def header_count(self, obj):
        return obj.header_total

    @admin.display(description=_("templates"), ordering="template_total")
    def template_count(self, obj):
        return obj.template_total


@admin.register(Header)
class HeaderAdmin(admin.ModelAdmin):
    list_display = ("sender_id", "shown_as", "entity", "category", "kind", "active", "template_count")
    list_filter = ("category", "active", "entity")
    search_fields = ("sender_id", "=entity__pe_id", "entity__name")
    list_select_related = ("entity",)
    fields = ("sender_id", "entity", "category", "active")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(template_total=Count("templates"))

    @admin.display(description=_("shown on phones as"))
    def shown_as(self, obj):
        return obj.display

    @admin.display(description=_("templates"), ordering="template_total")
    def template_count(self, obj):
        return obj.template_total


class TemplateAdminForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = (
            "dlt_template_id",
            "name",
            "entity",
            "category",
            "status",
            "content",
            "headers",
            "is_consent",
            "consent_template",
        )
        widgets = {"content": forms.Textarea(attrs={"rows": 4, "cols": 90})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Content is compared byte for byte: never strip a trailing space the portal approved.
        self.fields["content"].strip = False

    def clean(self):
        cleaned = super().clean()
        headers = cleaned.get("headers")
        if headers is not None and cleaned.get("entity") and cleaned.get("category"):
            probe = Template(entity=cleaned["entity"], category=cleaned["category"])
            problems = probe.header_errors(headers)
            if problems:
                self.add_error("headers", problems)
        return cleaned


class TestMessageForm(forms.Form):
    header = forms.CharField(label=_("header"), max_length=11, help_text=_("Exactly as registered; case matters."))
    # strip=False: a leading or trailing space is exactly what scrubbing rejects.
    text = forms.CharField(label=_("message text"), strip=False, widget=forms.Textarea(attrs={"rows": 5, "cols": 90}))


class ImportUploadForm(forms.Form):
    file = forms.FileField(label=_("CSV exported from the DLT portal"))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise ValidationError(_("The file is over 2 MB; split it or use the dlt_import command."))
        try:
            return read_text(upload)
        except ImportFileError as exc:
            raise ValidationError(str(exc)) from exc


class ImportConfirmForm(forms.Form):
    payload = forms.CharField(widget=forms.HiddenInput)

    def clean_payload(self):
        try:
            return signing.loads(self.cleaned_data["payload"], salt=IMPORT_SALT, max_age=IMPORT_MAX_AGE_SECONDS)
        except signing.SignatureExpired as exc:
            raise ValidationError(_("This preview is over an hour old; upload the file again.")) from exc
        except signing.BadSignature as exc:
            raise ValidationError(_("The preview was altered; upload the file again.")) from exc


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    form = TemplateAdminForm
    change_list_template = "templates/admin/template_change_list.html"
    list_display = ("dlt_template_id", "name", "entity", "category", "status", "header_list", "short_content")
    list_filter = ("status", "category", "is_consent", "entity", "headers")
    # DLT IDs exactly (19 digits: a partial match is noise); names and content by words.
    search_fields = ("=dlt_template_id", "name", "content")
    search_help_text = _("Exact DLT template ID, or words of the name or content.")
    list_select_related = ("entity",)
    filter_horizontal = ("headers",)
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("dlt_template_id", "name", "entity", "category", "status")}),
        (_("Content"), {"fields": ("content", "headers")}),
        (_("Consent"), {"classes": ("collapse",), "fields": ("is_consent", "consent_template")}),
        (_("Times"), {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("headers")

    @admin.display(description=_("headers"))
    def header_list(self, obj):
        return ", ".join(header.sender_id for header in obj.headers.all())

    @admin.display(description=_("content"))
    def short_content(self, obj):
        return obj.content if len(obj.content) <= 80 else obj.content[:79] + "…"

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("test/", self.admin_site.admin_view(self.test_view), name=f"{prefix}_test"),
            path("import/", self.admin_site.admin_view(self.import_view), name=f"{prefix}_import"),
        ] + super().get_urls()

    def has_import_permission(self, request) -> bool:
        # An import creates and changes templates: view-only users (support agents) may not.
        return self.has_add_permission(request) and self.has_change_permission(request)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "has_import_permission": self.has_import_permission(request)}
        return super().changelist_view(request, extra_context)

    def _context(self, request, title: str, **extra) -> dict:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **extra}

    def test_view(self, request):
        """Which template a (header, text) matches, with its values, or exactly why none does."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = TestMessageForm(request.GET or None)
        resolution = template = None
        values = []
        if form.is_valid():
            resolution = template_resolve(header=form.cleaned_data["header"], text=form.cleaned_data["text"])
            lookup = resolution.template_id or resolution.nearest_template_id
            template = Template.objects.filter(dlt_template_id=lookup).select_related("entity").first()
            if resolution.matched and template is not None:
                kinds = placeholders(parse_content(template.content))
                values = list(zip(range(1, len(kinds) + 1), kinds, resolution.values, strict=True))
        context = self._context(
            request, _("Test a message"), form=form, resolution=resolution, template=template, values=values
        )
        return TemplateResponse(request, "templates/admin/test_message.html", context)

    def import_view(self, request):
        """Upload a portal CSV, preview what each row would do, then confirm; nothing is saved before confirming."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        upload_form = ImportUploadForm()
        if request.method == "POST" and "confirm" in request.POST:
            confirm_form = ImportConfirmForm(request.POST)
            if confirm_form.is_valid():
                report = templates_import_csv(file=confirm_form.cleaned_data["payload"].encode(), dry_run=False)
                self._log_import(request, report)
                self.message_user(
                    request, report.summary(), messages.SUCCESS if not report.rejected else messages.WARNING
                )
                return TemplateResponse(
                    request,
                    "templates/admin/import.html",
                    self._context(request, _("Import done"), report=report, done=True, upload_form=upload_form),
                )
            for error in confirm_form.errors.get("payload", []):
                self.message_user(request, error, messages.ERROR)
        elif request.method == "POST":
            upload_form = ImportUploadForm(request.POST, request.FILES)
            if upload_form.is_valid():
                text = upload_form.cleaned_data["file"]
                try:
                    report = templates_import_csv(file=text.encode(), dry_run=True)
                except ImportFileError as exc:
                    upload_form.add_error("file", str(exc))
                else:
                    payload = signing.dumps(text, salt=IMPORT_SALT, compress=True)
                    context = self._context(
                        request,
                        _("Preview the import"),
                        report=report,
                        confirm_form=ImportConfirmForm(initial={"payload": payload}),
                        can_confirm=bool(report.created or report.updated),
                    )
                    return TemplateResponse(request, "templates/admin/import.html", context)
        context = self._context(request, _("Import templates from a DLT portal CSV"), upload_form=upload_form)
        return TemplateResponse(request, "templates/admin/import.html", context)

    def _log_import(self, request, report) -> None:
        saved = {row.template_pk: row for row in report.rows if row.template_pk and row.reason != "no change"}
        for template in Template.objects.filter(pk__in=saved):
            if saved[template.pk].outcome == ImportRow.CREATED:
                self.log_addition(request, template, [{"added": {}}])
            else:
                self.log_change(request, template, _("Updated from a DLT portal CSV import."))

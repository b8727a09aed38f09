"""
Batches in the admin: their progress, a CSV upload that creates one, and cancelling.

Batches are created by the send API or the upload form only (both through
bulk.services.batch_create) and never edited here; recipients are read-only and their
numbers masked for users without `delivery.view_full_numbers`.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from bulk.models import Batch, BatchRecipient
from bulk.services import BatchRefused, batch_cancel, batch_create, batch_progress, recipients_from_csv
from commands.models import Shortcode
from delivery.admin import ExactSearchMixin, ReadOnlyAdminMixin, message_admin_link
from delivery.admin_masking import PhoneMaskingAdminMixin
from delivery.statuses import Status

# An upload larger than this is refused before it is read (100,000 rows fit in far less).
UPLOAD_MAX_BYTES = 20 * 1024 * 1024

# Progress columns of the list, counted for the page's batches only (BatchChangeList).
PROGRESS = {
    "queued": Q(recipients__state=BatchRecipient.State.PENDING)
    | Q(recipients__message__status__in=[Status.QUEUED, Status.SENDING]),
    "sent": Q(recipients__message__status=Status.SENT),
    "delivered": Q(recipients__message__status=Status.DELIVERED),
    "failed": Q(recipients__message__status__in=[Status.FAILED, Status.UNDELIVERED, Status.REJECTED]),
    "refused": Q(recipients__message__status=Status.REFUSED),
    "skipped": Q(
        recipients__state__in=[
            BatchRecipient.State.SUPPRESSED,
            BatchRecipient.State.INVALID,
            BatchRecipient.State.DUPLICATE,
        ]
    ),
}


def _progress_column(name: str, label: str):
    @admin.display(description=label)
    def column(obj):
        return getattr(obj, f"progress_{name}", None)

    column.__name__ = f"progress_{name}"
    return column


class BatchChangeList(ChangeList):
    """
    The batch list, with progress counted in one aggregate over the shown page's batches
    only: a table of many 100,000-recipient batches is never joined whole.
    """

    def get_results(self, request):
        super().get_results(request)
        page_ids = [batch.id for batch in self.result_list]
        counted = (
            Batch.objects.filter(id__in=page_ids)
            .annotate(
                **{f"progress_{name}": Count("recipients", filter=condition) for name, condition in PROGRESS.items()}
            )
            .values("id", *(f"progress_{name}" for name in PROGRESS))
        )
        by_id = {row.pop("id"): row for row in counted}
        for batch in self.result_list:
            for key, value in by_id.get(batch.id, {}).items():
                setattr(batch, key, value)


class BatchUploadForm(forms.Form):
    shortcode = forms.ModelChoiceField(queryset=Shortcode.objects.filter(active=True), label=_("Shortcode"))
    text = forms.CharField(
        label=_("Text"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("{name} takes the recipient's column `name`. Leave empty to send a template."),
    )
    template = forms.CharField(
        label=_("DLT template"), required=False, help_text=_("Its DLT template ID or name; columns 1, 2, ... fill it.")
    )
    reference = forms.CharField(label=_("Reference"), required=False, max_length=100)
    file = forms.FileField(
        label=_("Recipients (CSV)"),
        help_text=_("A first row naming the columns: phone (or to), optionally reference, then one per variable."),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > UPLOAD_MAX_BYTES:
            raise forms.ValidationError(_("The file is larger than %(mb)s MB.") % {"mb": UPLOAD_MAX_BYTES // 2**20})
        return upload


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "shortcode",
        "state",
        "total",
        _progress_column("queued", _("queued")),
        _progress_column("sent", _("sent")),
        _progress_column("delivered", _("delivered")),
        _progress_column("failed", _("failed")),
        _progress_column("refused", _("refused")),
        _progress_column("skipped", _("skipped")),
        "client_name",
        "reference",
        "created_at",
    )
    list_filter = ("state", "shortcode", "created_at")
    # Exact matches only: a batch is looked up by its id or the caller's reference.
    search_fields = ("=id", "=reference", "=client_name")
    ordering = ("-created_at",)
    actions = ("cancel_selected",)
    change_list_template = "admin/bulk/batch/change_list.html"
    fieldsets = (
        (_("Batch"), {"fields": ("shortcode", "state", "text", "dlt_template_id", "variables", "reference")}),
        (_("Progress"), {"fields": ("progress", "recipients_link")}),
        (_("Sender"), {"fields": ("client_name", "client_id", "callback_url")}),
        (_("Times"), {"fields": ("created_at", "next_tick_at", "finished_at")}),
    )
    readonly_fields = (
        "shortcode",
        "state",
        "text",
        "dlt_template_id",
        "variables",
        "reference",
        "progress",
        "recipients_link",
        "client_name",
        "client_id",
        "callback_url",
        "created_at",
        "next_tick_at",
        "finished_at",
    )

    def get_changelist(self, request, **kwargs):
        return BatchChangeList

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Nothing of a batch is edited here; the page is read-only, cancelling is an action.
        return False

    def has_cancel_permission(self, request):
        return request.user.has_perm("bulk.cancel_batch")

    def has_upload_permission(self, request):
        return request.user.has_perm("bulk.add_batch")

    @admin.display(description=_("progress"))
    def progress(self, obj):
        counts = batch_progress(batch_id=obj.id).as_dict()
        return ", ".join(f"{name} {count}" for name, count in counts.items())

    @admin.display(description=_("recipients"))
    def recipients_link(self, obj):
        url = reverse("admin:bulk_batchrecipient_changelist") + f"?batch__id__exact={obj.id}"
        return format_html('<a href="{}">{}</a>', url, _("See the %(count)s recipients") % {"count": obj.total})

    @admin.action(permissions=["cancel"], description=_("Cancel the selected batches"))
    def cancel_selected(self, request, queryset):
        cancelled = sum(batch_cancel(batch_id=batch_id) for batch_id in queryset.values_list("id", flat=True))
        self.message_user(
            request,
            ngettext("%(count)d batch cancelled.", "%(count)d batches cancelled.", cancelled) % {"count": cancelled},
            messages.SUCCESS,
        )

    def get_urls(self):
        upload = path("upload/", self.admin_site.admin_view(self.upload_view), name="bulk_batch_upload")
        return [upload, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_upload": self.has_upload_permission(request)}
        return super().changelist_view(request, extra_context=extra_context)

    def upload_view(self, request):
        """A CSV of recipients and a text or template: one batch, through batch_create."""
        if not self.has_upload_permission(request):
            raise PermissionDenied
        form = BatchUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                batch = batch_create(
                    shortcode=data["shortcode"],
                    recipients=recipients_from_csv(data["file"].read()),
                    text=data["text"],
                    template=data["template"],
                    reference=data["reference"],
                    client_name=request.user.get_username(),
                )
            except BatchRefused as refused:
                form.add_error(None, refused.detail)
            else:
                self.log_addition(request, batch, [{"added": {}}])
                self.message_user(
                    request,
                    _("Batch %(id)s accepted: %(total)s recipients.") % {"id": batch.id, "total": batch.total},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:bulk_batch_change", args=[batch.id]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Upload a batch"),
            "form": form,
        }
        return TemplateResponse(request, "admin/bulk/batch/upload.html", context)


@admin.register(BatchRecipient)
class BatchRecipientAdmin(ExactSearchMixin, ReadOnlyAdminMixin, PhoneMaskingAdminMixin, admin.ModelAdmin):
    list_display = ("id", "batch", "phone", "state", "error", "message_link", "reference")
    list_filter = ("state",)
    search_fields = ("=batch__id", "=phone", "=reference")
    list_select_related = ("batch",)
    readonly_fields = ("batch", "phone", "variables", "reference", "state", "error", "message_link")
    fields = readonly_fields
    # Recipient lists run to 100,000 rows a batch: no full count.
    show_full_result_count = False

    # By id: a message's own name carries its number.
    @admin.display(description=_("message"))
    def message_link(self, obj):
        return message_admin_link(obj.message_id)

import contextlib

from django.conf import settings
from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from delivery.models import ChannelLog, DeliveryReport, Message, Suppression
from delivery.outbound import messages_refused_count, messages_requeue
from delivery.phones import InvalidPhoneNumber, to_e164
from delivery.statuses import Direction
from delivery.suppression import suppression_add


class ReadOnlyAdminMixin:
    """Logs are written by the pipeline only; nobody edits or deletes them in the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DeliveryReportInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeliveryReport
    fields = (
        "received_at",
        "provider_status",
        "status",
        "applied",
        "error_code",
        "error_message",
    )
    readonly_fields = fields
    extra = 0
    ordering = ("received_at",)


class ReplyInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Message
    fk_name = "in_reply_to"
    fields = ("created_at", "body", "status", "provider_message_id", "error_message")
    readonly_fields = fields
    extra = 0
    verbose_name = _("reply")
    verbose_name_plural = _("replies")
    show_change_link = True


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "arrow",
        "phone",
        "shortcode",
        "text",
        "status",
        "provider",
        "provider_message_id",
        "why",
    )
    # error_code says why a message failed or went unanswered (opted_out, provider_mismatch...).
    list_filter = ("direction", "status", "provider", "error_code", "shortcode", "created_at")
    # Exact matches only: the table is large and agents search by number or id.
    search_fields = ("=phone", "=provider_message_id", "=uuid")
    search_help_text = _("Exact phone number (any format) or provider message id.")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50
    list_select_related = ("in_reply_to",)
    readonly_fields = [field.name for field in Message._meta.fields]
    fieldsets = (
        (None, {"fields": ("direction", "status", "shortcode", "phone", "body", "in_reply_to")}),
        (_("Text"), {"fields": ("encoding", "segments")}),
        (_("DLT"), {"fields": ("dlt_template_id", "dlt_entity_id", "dlt_category")}),
        (_("Provider"), {"fields": ("provider", "provider_message_id", "provider_options", "uuid")}),
        (_("Attempts and errors"), {"fields": ("attempts", "next_attempt_at", "error_code", "error_message")}),
        (_("Times"), {"fields": ("created_at", "send_after", "handled_at", "sent_at", "delivered_at", "updated_at")}),
        (_("Raw payload"), {"classes": ("collapse",), "fields": ("raw_payload",)}),
    )
    inlines = (ReplyInline, DeliveryReportInline)
    actions = ("requeue",)

    def get_queryset(self, request):
        # The raw payload is only read on the detail page.
        return super().get_queryset(request).defer("raw_payload", "provider_options")

    def get_search_results(self, request, queryset, search_term):
        with contextlib.suppress(InvalidPhoneNumber):
            search_term = to_e164(search_term, region=settings.SMS_DEFAULT_REGION)
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The change page is shown read-only to those who may view it.
        return False

    def has_requeue_permission(self, request):
        return request.user.has_perm("delivery.requeue_message")

    @admin.display(description=_("dir"), ordering="direction")
    def arrow(self, obj):
        return "← in" if obj.direction == Direction.INBOUND else "→ out"

    @admin.display(description=_("text"))
    def text(self, obj):
        return obj.body if len(obj.body) <= 60 else obj.body[:59] + "…"

    @admin.display(description=_("why"), ordering="error_code")
    def why(self, obj):
        # The code fits the list; the whole reason shows on hover and on the message's page.
        return format_html('<span title="{}">{}</span>', obj.error_message, obj.error_code) if obj.error_code else ""

    @admin.action(permissions=["requeue"], description=_("Send the selected failed replies again"))
    def requeue(self, request, queryset):
        message_ids = list(queryset.values_list("id", flat=True))
        refused = messages_refused_count(message_ids=message_ids)
        count = messages_requeue(message_ids=message_ids)
        skipped = len(message_ids) - count - refused
        self.message_user(
            request,
            ngettext(
                "%(count)d message queued again.",
                "%(count)d messages queued again.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
        if refused:
            self.message_user(
                request,
                ngettext(
                    "%(n)d skipped because refused: a refused message (opted out, no DLT template) is never sent.",
                    "%(n)d skipped because refused: a refused message (opted out, no DLT template) is never sent.",
                    refused,
                )
                % {"n": refused},
                messages.WARNING,
            )
        if skipped:
            self.message_user(
                request,
                _("%(n)d skipped: only failed outbound messages are sent again.") % {"n": skipped},
            )


@admin.register(DeliveryReport)
class DeliveryReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "received_at",
        "provider",
        "provider_message_id",
        "provider_status",
        "status",
        "applied",
        "message",
    )
    list_filter = ("provider", "status", "applied", "received_at")
    search_fields = ("=provider_message_id", "=reference", "=message__phone")
    date_hierarchy = "received_at"
    show_full_result_count = False
    list_select_related = ("message",)
    readonly_fields = [field.name for field in DeliveryReport._meta.fields]


@admin.register(ChannelLog)
class ChannelLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "provider", "status_code", "elapsed_ms", "message", "short_error")
    list_filter = ("kind", "provider", "status_code", "created_at")
    search_fields = ("=message__phone", "=message__provider_message_id", "=message__uuid")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_select_related = ("message",)
    readonly_fields = [field.name for field in ChannelLog._meta.fields]

    def get_queryset(self, request):
        # Bodies are only read on the detail page.
        return super().get_queryset(request).defer("request", "response")

    @admin.display(description=_("error"))
    def short_error(self, obj):
        return obj.error[:80]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("phone", "shortcode_or_all", "keyword", "source", "created_at")
    list_filter = ("source", "shortcode", "keyword", "created_at")
    search_fields = ("=phone",)
    date_hierarchy = "created_at"
    fields = ("phone", "shortcode", "keyword", "source", "message", "created_at")
    readonly_fields = ("source", "message", "created_at")

    def has_change_permission(self, request, obj=None):
        # An opt-out is a fact; to lift it the subscriber sends START or staff delete the row.
        return False

    def save_model(self, request, obj, form, change):
        obj.phone = to_e164(obj.phone, region=settings.SMS_DEFAULT_REGION)
        suppression_add(phone=obj.phone, shortcode=obj.shortcode, keyword=obj.keyword, source="admin")

    @admin.display(description=_("shortcode"), ordering="shortcode")
    def shortcode_or_all(self, obj):
        return obj.shortcode or _("all")

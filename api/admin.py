"""
The send API in the admin: clients (their token shown once), and read-only lists of the
callbacks POSTed and the idempotency keys kept.
"""

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from api.models import ApiClient, CallbackAttempt, IdempotencyKey
from delivery.admin import ReadOnlyAdminMixin


def _token_page(request, client: ApiClient, token: str) -> TemplateResponse:
    # The token is rendered into this one page and nowhere else: never in a message cookie,
    # a log line or the database, where it could be read later.
    context = {
        **admin.site.each_context(request),
        "title": _("API token"),
        "client": client,
        "token": token,
        "token_prefix": token[:8],
    }
    response = TemplateResponse(request, "api/admin/token.html", context)
    response["Cache-Control"] = "no-store"
    return response


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ("name", "active", "token_prefix", "rate", "callback_secret_env", "last_used_at", "created_at")
    list_filter = ("active",)
    search_fields = ("name",)
    filter_horizontal = ("shortcodes",)
    readonly_fields = ("token_prefix", "last_used_at", "created_at")
    fieldsets = (
        (None, {"fields": ("name", "active", "token_prefix")}),
        (_("What it may do"), {"fields": ("shortcodes", "rate")}),
        (_("Status callbacks"), {"fields": ("callback_secret_env",)}),
        (_("History"), {"fields": ("created_at", "last_used_at")}),
    )
    actions = ("token_reissue",)

    def save_model(self, request, obj, form, change):
        if not change:
            request._api_token = obj.token_set()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        token = getattr(request, "_api_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        return _token_page(request, obj, token)

    @admin.action(description=_("Issue a new token (the old one stops working)"), permissions=["change"])
    def token_reissue(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Choose one client: its new token is shown once."), messages.WARNING)
            return None
        client = queryset.get()
        token = client.token_set()
        client.save(update_fields=["token_hash", "token_prefix"])
        return _token_page(request, client, token)


@admin.register(CallbackAttempt)
class CallbackAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "message_link",
        "event",
        "status",
        "attempt",
        "status_code",
        "elapsed_ms",
        "next_retry_at",
        "url",
    )
    list_filter = ("status", "event")
    search_fields = ("=message__id", "=message__reference", "url")
    list_select_related = ("message",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [field.name for field in CallbackAttempt._meta.fields]

    @admin.display(description=_("message"), ordering="message_id")
    def message_link(self, attempt):
        url = reverse("admin:delivery_message_change", args=[attempt.message_id])
        return format_html('<a href="{}">#{}</a>', url, attempt.message_id)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key", "client", "method", "path", "response_status", "created_at")
    list_filter = ("client", "response_status")
    search_fields = ("=key",)
    list_select_related = ("client",)
    show_full_result_count = False
    readonly_fields = [field.name for field in IdempotencyKey._meta.fields]

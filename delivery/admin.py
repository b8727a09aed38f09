"""
The message log in the admin: messages, delivery reports, channel logs, the suppression
list. Everything but the suppression list is written by the pipeline only and read-only
here. Numbers are masked for users without `delivery.view_full_numbers`
(delivery/admin_masking.py), in pages, payloads and the CSV export alike.

The message list is built for a table of millions of rows: no full COUNT(*)
(BoundedCountPaginator), filter choices read from the newest rows only, exact-match
search, no date hierarchy (its year list is a scan of the whole table), raw payloads
deferred, one query per related table.
"""

import contextlib
import csv
from datetime import datetime

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import CharField, Q, Subquery, TextField
from django.db.models.functions import Coalesce
from django.http import HttpResponseBadRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from delivery.admin_masking import (
    PageViewerMixin,
    PhoneMaskingAdminMixin,
    conversation_link,
    conversation_url,
    numbers_visible,
    payload_shown,
    phone_masked_copy,
    phone_shown,
    text_shown,
)
from delivery.models import ChannelLog, DeliveryReport, Message, Suppression
from delivery.outbound import REFUSAL_CODES
from delivery.phones import InvalidPhoneNumber, to_e164
from delivery.resend import RESENDABLE_STATUSES, ResendRefused, message_resend, message_resends
from delivery.statuses import Direction
from delivery.suppression import suppression_add


def phone_search_term(search_term: str) -> str:
    """A search for a number in any format finds its E.164 form; anything else is searched as typed."""
    with contextlib.suppress(InvalidPhoneNumber):
        return to_e164(search_term, region=settings.SMS_DEFAULT_REGION)
    return search_term


def exact_search_results(queryset, search_term: str, fields: tuple[str, ...]):
    """
    `get_search_results` for the big tables: the rows where one of `fields` (ORM paths)
    equals the term exactly, a number in any format as its E.164 form; a field that cannot
    hold the term (a UUID, a number) is left out. Each field's own index answers it; Django's `=` prefix
    compares UPPER() of both sides, which no index can answer (a whole-table scan: 14.7 s at
    10 million messages, docs/SCALING.md).
    """
    term = search_term.strip()
    if not term:
        return queryset, False
    term = phone_search_term(term)
    match = Q(pk__in=[])
    for field_path in fields:
        try:
            value = _field_at(queryset.model, field_path).to_python(term)
        except ValidationError:  # not a value this field can hold (a UUID, a number)
            continue
        match |= Q(**{field_path: value})
    return queryset.filter(match), False


class ExactSearchMixin:
    """The admin's search box on a big table: exact_search_results over `search_fields`."""

    def get_search_results(self, request, queryset, search_term):
        return exact_search_results(queryset, search_term, tuple(f.lstrip("=") for f in self.search_fields))


def _field_at(model, field_path: str):
    *relations, name = field_path.split("__")
    for relation in relations:
        model = model._meta.get_field(relation).related_model
    return model._meta.get_field(name)


def message_admin_link(message_id: int | None):
    """A link to a message's page, named by id: its __str__ carries the phone number."""
    if message_id is None:
        return "—"
    url = reverse("admin:delivery_message_change", args=[message_id])
    return format_html('<a href="{}">{}</a>', url, _("message #%(id)s") % {"id": message_id})


class BoundedCountPaginator(Paginator):
    """
    Counts at most COUNT_LIMIT rows (`SELECT COUNT(*) FROM (... LIMIT n)`), so a page of a
    huge table never waits on a full count. Past the limit, an unfiltered list on
    PostgreSQL shows the planner's row estimate (pg_class.reltuples, `estimated`); any
    other shows the limit with `capped` set, and the page says "more than". Pages past the
    count are reached by narrowing the filter.
    """

    COUNT_LIMIT = 10_000

    @cached_property
    def _bounded_count(self) -> int:
        return self.object_list.order_by()[: self.COUNT_LIMIT + 1].count()

    @cached_property
    def capped(self) -> bool:
        return self._bounded_count > self.COUNT_LIMIT

    @cached_property
    def _estimate(self) -> int | None:
        if not self.capped:
            return None
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor != "postgresql" or queryset.query.where:
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
            )
            row = cursor.fetchone()
        return row[0] if row and row[0] > self.COUNT_LIMIT else None

    @property
    def estimated(self) -> bool:
        return self._estimate is not None

    @cached_property
    def count(self) -> int:
        if not self.capped:
            return self._bounded_count
        return self._estimate or self.COUNT_LIMIT


class RecentValuesFilter(admin.SimpleListFilter):
    """
    Choices are the values among the newest RECENT_ROWS rows (a primary-key range, so
    cheap on any table size) plus `always` and the one selected; the admin's own field
    filter runs a DISTINCT over the whole table.
    """

    RECENT_ROWS = 5000
    field_name = ""
    always: tuple[str, ...] = ()

    def lookups(self, request, model_admin):
        model = model_admin.model
        newest = model.objects.order_by("-id").values("id")[self.RECENT_ROWS - 1 : self.RECENT_ROWS]
        recent = model.objects.filter(id__gte=Coalesce(Subquery(newest), 0)).exclude(
            **{f"{self.field_name}__isnull": True}
        )
        if isinstance(model._meta.get_field(self.field_name), (CharField, TextField)):
            recent = recent.exclude(**{self.field_name: ""})
        recent = recent.order_by().values_list(self.field_name, flat=True).distinct()
        values = {str(value) for value in recent} | set(self.always) | ({self.value()} if self.value() else set())
        return [(value, value) for value in sorted(values)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field_name: self.value()})
        return queryset


def recent_values_filter(field_name: str, title: str, *, always=()) -> type[RecentValuesFilter]:
    """A RecentValuesFilter on `field_name`, its query parameter named like the field."""
    return type(
        f"Recent{field_name.title().replace('_', '')}Filter",
        (RecentValuesFilter,),
        {"title": title, "parameter_name": field_name, "field_name": field_name, "always": tuple(always)},
    )


def provider_slugs() -> tuple[str, ...]:
    return tuple(settings.SMS_PROVIDER_SLUGS)


class ProviderFilter(RecentValuesFilter):
    title = _("provider")
    parameter_name = field_name = "provider"

    @property
    def always(self):
        return provider_slugs()


# error_code says why a message failed, was refused or went unanswered (opted_out, provider_mismatch...).
ReasonFilter = recent_values_filter("error_code", _("reason"), always=REFUSAL_CODES)
ShortcodeFilter = recent_values_filter("shortcode", _("shortcode"))


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
    fields = ("reply", "created_at", "body", "status", "provider_message_id", "error_message")
    readonly_fields = fields
    extra = 0
    verbose_name = _("reply")
    verbose_name_plural = _("replies")
    # The first column links to the reply's page.
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("raw_payload", "provider_options")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        if numbers_visible(request.user):
            return formset

        class MaskedReplies(formset):
            # Each row's title is str(reply), which carries the number: rows show masked copies (never saved).
            def get_queryset(self):
                if not hasattr(self, "_masked"):
                    self._masked = [phone_masked_copy(reply) for reply in super().get_queryset()]
                return self._masked

        return MaskedReplies

    @admin.display(description=_("reply"))
    def reply(self, obj):
        return message_admin_link(obj.id)


@admin.register(Message)
class MessageAdmin(ExactSearchMixin, PhoneMaskingAdminMixin, admin.ModelAdmin):
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
    list_filter = ("direction", "status", ReasonFilter, ShortcodeFilter, ProviderFilter, "created_at")
    # Exact matches only: the table is large and agents search by number or id.
    search_fields = ("=phone", "=provider_message_id", "=uuid")
    search_help_text = _("Exact phone number (any format) or provider message id.")
    show_full_result_count = False
    paginator = BoundedCountPaginator
    list_per_page = 50
    # No related row is shown in the list: nothing to join.
    list_select_related = False
    readonly_fields = (
        *(field.name for field in Message._meta.fields if field.name not in ("raw_payload", "in_reply_to")),
        "raw_payload_shown",
        "in_reply_to_link",
        "conversation",
        "sent_again",
    )
    fieldsets = (
        (None, {"fields": ("direction", "status", "shortcode", "phone", "body", "in_reply_to_link", "conversation")}),
        (_("Text"), {"fields": ("encoding", "segments")}),
        (_("DLT"), {"fields": ("dlt_template_id", "dlt_entity_id", "dlt_category")}),
        (_("Provider"), {"fields": ("provider", "provider_message_id", "provider_options", "uuid")}),
        (
            _("Attempts and errors"),
            {"fields": ("attempts", "next_attempt_at", "error_code", "error_message", "sent_again")},
        ),
        (_("Times"), {"fields": ("created_at", "send_after", "handled_at", "sent_at", "delivered_at", "updated_at")}),
        (_("Raw payload"), {"classes": ("collapse",), "fields": ("raw_payload_shown",)}),
    )
    inlines = (ReplyInline, DeliveryReportInline)
    actions = ("resend",)
    change_list_template = "admin/delivery/message/change_list.html"
    change_form_template = "admin/delivery/message/change_form.html"

    def get_queryset(self, request):
        # Payloads are read on the detail page only (each loads there when shown).
        return super().get_queryset(request).defer("raw_payload", "provider_options")

    def get_urls(self):
        return [
            path("export.csv", self.admin_site.admin_view(self.export_view), name="delivery_message_export"),
            path(
                "<path:object_id>/resend/",
                self.admin_site.admin_view(require_POST(self.resend_view)),
                name="delivery_message_resend",
            ),
            *super().get_urls(),
        ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The change page is shown read-only to those who may view it.
        return False

    def has_requeue_permission(self, request, obj=None):
        return request.user.has_perm("delivery.requeue_message")

    def phone_cell(self, obj, *, visible):
        # The number leads to the phone's whole conversation.
        return format_html(
            '<a href="{}">{}</a>', conversation_url(message=obj.id), phone_shown(obj.phone, visible=visible)
        )

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

    @admin.display(description=_("in reply to"))
    def in_reply_to_link(self, obj):
        return message_admin_link(obj.in_reply_to_id)

    @admin.display(description=_("conversation"))
    def conversation(self, obj):
        return conversation_link(message=obj.id)

    @admin.display(description=_("raw payload"))
    def raw_payload_shown(self, obj):
        text = payload_shown(obj.raw_payload, visible=self.obj_numbers_visible(obj), phones=[obj.phone])
        return format_html("<pre>{}</pre>", text) if text else "—"

    @admin.display(description=_("sent again"))
    def sent_again(self, obj):
        entries = message_resends(message_id=obj.id)
        if not entries:
            return "—"
        return format_html_join(
            "", "<div>{}: {} ({})</div>", ((e.action_time, e.change_message, e.user.get_username()) for e in entries)
        )

    @admin.action(permissions=["requeue"], description=_("Send the selected failed messages again"))
    def resend(self, request, queryset):
        resent, refused = [], []
        for message_id in queryset.values_list("id", flat=True):
            try:
                resent.append(message_resend(message_id=message_id, user=request.user))
            except ResendRefused as why:
                refused.append(str(why))
        if resent:
            self.message_user(
                request,
                ngettext("%(count)d message sent again.", "%(count)d messages sent again.", len(resent))
                % {"count": len(resent)},
                messages.SUCCESS,
            )
        for why in refused:
            self.message_user(request, why, messages.WARNING)

    def resend_view(self, request, object_id):
        """POST: the message page's "Send again" button."""
        if not self.has_requeue_permission(request):
            raise PermissionDenied
        message = get_object_or_404(Message, pk=unquote(object_id))
        try:
            resent = message_resend(message_id=message.id, user=request.user)
        except ResendRefused as why:
            self.message_user(request, str(why), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:delivery_message_change", args=[message.id]))
        self.message_user(
            request, _("Sent again as message #%(id)s (%(status)s).") % {"id": resent.id, "status": resent.status}
        )
        return HttpResponseRedirect(reverse("admin:delivery_message_change", args=[resent.id]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["conversation_url"] = conversation_url(message=obj.id)
            context["can_resend"] = (
                self.has_requeue_permission(request)
                and obj.direction == Direction.OUTBOUND
                and obj.status in RESENDABLE_STATUSES
                and obj.error_code not in REFUSAL_CODES
            )
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def export_view(self, request):
        """The messages the list shows with the same filter and search, as CSV, streamed row by row."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("Unknown filter.")
        rows = changelist.get_queryset(request).values_list(*EXPORT_COLUMNS)
        visible = numbers_visible(request.user)
        response = StreamingHttpResponse(
            message_csv_lines(rows.iterator(chunk_size=2000), visible=visible), content_type="text/csv; charset=utf-8"
        )
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="messages-{stamp}.csv"'
        return response


EXPORT_COLUMNS = (
    "created_at",
    "direction",
    "shortcode",
    "phone",
    "body",
    "status",
    "provider",
    "provider_message_id",
    "error_code",
    "error_message",
    "uuid",
)
# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value):
        return value


def message_csv_lines(rows, *, visible: bool):
    """CSV lines (header first) of EXPORT_COLUMNS rows, numbers masked unless `visible`, text cells formula-safe."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    phone_at = EXPORT_COLUMNS.index("phone")
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            if index == phone_at:
                value = phone_shown(value, visible=visible)
            elif isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
                value = "'" + value
            cells.append(value)
        yield writer.writerow(cells)


@admin.register(DeliveryReport)
class DeliveryReportAdmin(ExactSearchMixin, PageViewerMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "received_at",
        "provider",
        "provider_message_id",
        "provider_status",
        "status",
        "applied",
        "message_link",
        "conversation",
    )
    list_filter = (ProviderFilter, recent_values_filter("status", _("status")), "applied", "received_at")
    search_fields = ("=provider_message_id", "=reference", "=message__phone")
    show_full_result_count = False
    paginator = BoundedCountPaginator
    readonly_fields = (
        *(field.name for field in DeliveryReport._meta.fields if field.name not in ("message", "raw_payload")),
        "message_link",
        "raw_payload_shown",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        # The payload is read on the detail page only.
        return super().get_queryset(request).defer("raw_payload")

    @admin.display(description=_("message"), ordering="message")
    def message_link(self, obj):
        return message_admin_link(obj.message_id)

    @admin.display(description=_("conversation"))
    def conversation(self, obj):
        return conversation_link(message=obj.message_id) if obj.message_id else "—"

    @admin.display(description=_("raw payload"))
    def raw_payload_shown(self, obj):
        phones = [obj.message.phone] if obj.message_id else []
        text = payload_shown(obj.raw_payload, visible=self.obj_numbers_visible(obj), phones=phones)
        return format_html("<pre>{}</pre>", text) if text else "—"


@admin.register(ChannelLog)
class ChannelLogAdmin(ExactSearchMixin, PageViewerMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "provider", "status_code", "elapsed_ms", "message_link", "short_error")
    list_filter = ("kind", ProviderFilter, recent_values_filter("status_code", _("HTTP status")), "created_at")
    search_fields = ("=message__phone", "=message__provider_message_id", "=message__uuid")
    show_full_result_count = False
    paginator = BoundedCountPaginator
    readonly_fields = (
        "created_at",
        "kind",
        "provider",
        "message_link",
        "status_code",
        "elapsed_ms",
        "url_shown",
        "request_shown",
        "response_shown",
        "error_shown",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        # Bodies are read on the detail page only.
        return super().get_queryset(request).defer("request", "response")

    def _shown(self, obj, text):
        phones = [obj.message.phone] if obj.message_id else []
        return text_shown(text, visible=self.obj_numbers_visible(obj), phones=phones)

    @admin.display(description=_("message"), ordering="message")
    def message_link(self, obj):
        return message_admin_link(obj.message_id)

    @admin.display(description=_("error"))
    def short_error(self, obj):
        # A list cell cannot tell who looks: masked for all; the log's page shows it to those allowed.
        return text_shown(obj.error[:80], visible=False)

    @admin.display(description=_("URL"))
    def url_shown(self, obj):
        return self._shown(obj, obj.url)

    @admin.display(description=_("request"))
    def request_shown(self, obj):
        return format_html("<pre>{}</pre>", self._shown(obj, obj.request))

    @admin.display(description=_("response"))
    def response_shown(self, obj):
        return format_html("<pre>{}</pre>", self._shown(obj, obj.response))

    @admin.display(description=_("error"))
    def error_shown(self, obj):
        return self._shown(obj, obj.error)


@admin.register(Suppression)
class SuppressionAdmin(ExactSearchMixin, PhoneMaskingAdminMixin, admin.ModelAdmin):
    list_display = ("phone", "shortcode_or_all", "keyword", "source", "created_at")
    list_filter = ("source", "shortcode", "keyword", "created_at")
    search_fields = ("=phone",)
    date_hierarchy = "created_at"
    fields = ("phone", "shortcode", "keyword", "source", "message_link", "created_at")
    readonly_fields = ("source", "message_link", "created_at")

    def has_change_permission(self, request, obj=None):
        # An opt-out is a fact; to lift it the subscriber sends START or staff delete the row.
        return False

    def save_model(self, request, obj, form, change):
        obj.phone = to_e164(obj.phone, region=settings.SMS_DEFAULT_REGION)
        suppression_add(phone=obj.phone, shortcode=obj.shortcode, keyword=obj.keyword, source="admin")

    @admin.display(description=_("shortcode"), ordering="shortcode")
    def shortcode_or_all(self, obj):
        return obj.shortcode or _("all")

    @admin.display(description=_("opt-out message"))
    def message_link(self, obj):
        return message_admin_link(obj.message_id)

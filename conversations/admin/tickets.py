"""
Support tickets, as agents work them: status and assignee change, the subscriber's words
and number never do (tickets are opened by SMS only, never in the admin).
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from conversations.models import Contact, SupportTicket
from delivery.admin_masking import PhoneMaskingAdminMixin, conversation_url


def tickets_status_set(*, tickets, status: str) -> int:
    """Move the tickets to `status`; the number changed (those already there are left alone)."""
    return tickets.exclude(status=status).update(status=status, updated_at=timezone.now())


@admin.register(SupportTicket)
class SupportTicketAdmin(PhoneMaskingAdminMixin, admin.ModelAdmin):
    list_display = ("reference", "status", "assignee", "phone", "shortcode", "issue_start", "created_at", "updated_at")
    list_filter = ("status", ("assignee", admin.RelatedOnlyFieldListFilter), "shortcode", "created_at")
    search_fields = ("=reference", "=phone", "issue")
    list_select_related = ("assignee",)
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    actions = ("mark_in_progress", "mark_closed", "mark_open", "assign_to_me")
    fieldsets = (
        (_("Work"), {"fields": ("reference", "status", "assignee")}),
        (_("Reported"), {"fields": ("phone", "shortcode", "issue", "conversation", "created_at", "updated_at")}),
    )
    # The subscriber's words and number are evidence: agents change the work, not the report.
    readonly_fields = ("reference", "phone", "shortcode", "issue", "conversation", "created_at", "updated_at")

    def has_add_permission(self, request):
        return False  # a ticket is opened by the subscriber's SMS

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "assignee":
            kwargs["queryset"] = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("issue"))
    def issue_start(self, ticket):
        return Truncator(ticket.issue).chars(60)

    @admin.display(description=_("conversation"))
    def conversation(self, ticket):
        """The console's page of the phone's whole conversation, linked by id so no number shows in the URL."""
        if ticket.message_id is not None:
            url = conversation_url(message=ticket.message_id)
        else:
            contact_id = Contact.objects.filter(phone=ticket.phone).values_list("id", flat=True).first()
            if contact_id is None:
                return "—"
            url = conversation_url(contact=contact_id)
        return format_html('<a href="{}">{}</a>', url, _("Open the conversation"))

    def _status_action(self, request, queryset, status: str) -> None:
        changed = tickets_status_set(tickets=queryset, status=status)
        label = SupportTicket.Status(status).label
        self.message_user(
            request,
            ngettext("%(count)d ticket marked %(status)s.", "%(count)d tickets marked %(status)s.", changed)
            % {"count": changed, "status": label},
        )

    @admin.action(permissions=["change"], description=_("Mark selected tickets in progress"))
    def mark_in_progress(self, request, queryset):
        self._status_action(request, queryset, SupportTicket.Status.IN_PROGRESS)

    @admin.action(permissions=["change"], description=_("Close selected tickets"))
    def mark_closed(self, request, queryset):
        self._status_action(request, queryset, SupportTicket.Status.CLOSED)

    @admin.action(permissions=["change"], description=_("Reopen selected tickets"))
    def mark_open(self, request, queryset):
        self._status_action(request, queryset, SupportTicket.Status.OPEN)

    @admin.action(permissions=["change"], description=_("Assign selected tickets to me"))
    def assign_to_me(self, request, queryset):
        changed = queryset.update(assignee=request.user, updated_at=timezone.now())
        self.message_user(
            request,
            ngettext("%(count)d ticket assigned to you.", "%(count)d tickets assigned to you.", changed)
            % {"count": changed},
        )

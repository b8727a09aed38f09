from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from conversations.models import Contact
from delivery.admin import phone_search_term
from delivery.admin_masking import PhoneMaskingAdminMixin, conversation_link, conversation_url, phone_shown


@admin.register(Contact)
class ContactAdmin(PhoneMaskingAdminMixin, admin.ModelAdmin):
    list_display = ("phone", "name", "first_seen", "registered_at")
    list_filter = ("registered_at", "first_seen")
    # The number exactly (any format, masked or not on screen), or part of a name.
    search_fields = ("=phone", "name")
    search_help_text = _("Exact phone number (any format) or part of a name.")
    date_hierarchy = "first_seen"
    readonly_fields = ("first_seen", "conversation")

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, phone_search_term(search_term))

    def phone_cell(self, obj, *, visible):
        # The number leads to the contact's conversation.
        return format_html(
            '<a href="{}">{}</a>', conversation_url(contact=obj.id), phone_shown(obj.phone, visible=visible)
        )

    @admin.display(description=_("conversation"))
    def conversation(self, obj):
        return conversation_link(contact=obj.id)

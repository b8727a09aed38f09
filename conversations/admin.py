from django.contrib import admin

from conversations.models import Contact, SupportTicket


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("phone", "name", "first_seen", "registered_at")
    list_filter = ("registered_at", "first_seen")
    search_fields = ("=phone", "name")
    date_hierarchy = "first_seen"
    readonly_fields = ("first_seen",)


@admin.register(SupportTicket)
class SupportTicketAdmin(admin.ModelAdmin):
    list_display = ("reference", "phone", "shortcode", "status", "created_at", "issue")
    list_filter = ("status", "shortcode", "created_at")
    search_fields = ("=reference", "=phone", "issue")
    date_hierarchy = "created_at"
    readonly_fields = ("reference", "phone", "shortcode", "issue", "created_at")

from django.contrib import admin

from demo.models import Account


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("phone", "balance")
    search_fields = ("=phone",)

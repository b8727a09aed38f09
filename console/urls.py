"""
The console's pages, under /admin/console/. Every view is wrapped in
admin.site.admin_view (staff login, CSRF, never cached) and renders inside the admin's
own base template with admin.site.each_context(request).
"""

from django.contrib import admin
from django.urls import path

from console.conversation import conversation_updates_view, conversation_view
from console.send import send_view
from console.simulator import simulator_view

app_name = "console"

urlpatterns = [
    path("send/", admin.site.admin_view(send_view), name="send"),
    path("simulator/", admin.site.admin_view(simulator_view), name="simulator"),
    path("conversation/", admin.site.admin_view(conversation_view), name="conversation"),
    path("conversation/updates/", admin.site.admin_view(conversation_updates_view), name="conversation-updates"),
]

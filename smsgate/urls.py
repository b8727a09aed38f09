from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.http import require_GET

from conversations.views import InboundWebhook
from delivery.views import StatusWebhook
from smsgate.health import health, live
from smsgate.metrics_view import metrics

admin.site.site_header = "smsgate"
admin.site.site_title = "smsgate admin"
admin.site.index_title = "Shortcodes, messages and templates"

urlpatterns = [
    path(
        "webhooks/<slug:provider>/inbound/",
        InboundWebhook.as_view(),
        name="webhook-inbound",
    ),
    path(
        "webhooks/<slug:provider>/status/",
        StatusWebhook.as_view(),
        name="webhook-status",
    ),
    # Seed-compatible aliases: the provider is detected from the payload.
    path("sms-handler", InboundWebhook.as_view(), name="sms-handler"),
    path("sms-dlr", StatusWebhook.as_view(), name="sms-dlr"),
    path("health/", require_GET(health), name="health"),
    re_path(r"^health/live/?$", require_GET(live), name="health-live"),
    re_path(r"^metrics/?$", metrics, name="metrics"),
    # The send API: /api/v1/..., the seed-compatible /send-sms, /api/schema/ with Swagger UI and ReDoc.
    path("", include("api.urls")),
    # The console's own admin pages (dashboard data, conversations, send form, simulator).
    path("admin/console/", include("console.urls")),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    # The stand-in for the demo's HTTP command; named by string, so the project imports no demo module.
    urlpatterns.append(path("demo/", include("demo.urls")))

"""The send API's URLs: /api/v1/..., the seed-compatible /send-sms, and the OpenAPI schema with its two viewers."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from api.batches import batch_urls
from api.views import MessageDetailView, MessagesView, SeedSendView

urlpatterns = [
    path("api/v1/messages/", MessagesView.as_view(), name="api-messages"),
    # Any segment: the view answers 404 in the API's own shape, not Django's HTML page.
    path("api/v1/messages/<str:message_id>/", MessageDetailView.as_view(), name="api-message"),
    path("send-sms", SeedSendView.as_view(), name="send-sms"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
# Bulk sends (api/batches.py): POST /api/v1/batches/, GET .../<id>/, POST .../<id>/cancel/.
urlpatterns += batch_urls

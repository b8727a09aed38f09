"""
Two request lanes in one WSGI application: provider webhooks, and everything else.

A provider webhook is authenticated by the provider's own credential and answers a
machine: session, authentication, CSRF, messages and clickjacking middleware do nothing
for it, and the request metrics of django-prometheus count again what the webhook's own
events count (`webhook.received`, `webhook.refused`). Measured on the generic inbound
webhook, that stack was 1.5 ms of its 4 ms of CPU (docs/PERFORMANCE.md). So webhook
paths run with no middleware; the admin, the console, the API, health and metrics keep
settings.MIDDLEWARE. Both lanes share the URLconf, the settings and the request signals
(connections are closed or kept by the same rules).
"""

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections

# PATH_INFO prefixes served by the webhook lane (smsgate/urls.py).
WEBHOOK_PATH_PREFIXES = ("/webhooks/", "/sms-handler", "/sms-dlr")


class WebhookHandler(WSGIHandler):
    """
    A WSGI handler with no middleware: the view's own errors and Django's 500 only.

    It also skips CONN_HEALTH_CHECKS' `SELECT 1`, a round trip per request as dear as the
    webhook's own INSERT. A connection the database dropped fails the webhook's statement
    instead: the webhook answers 503, the aggregator retries, and the broken connection is
    closed when the request ends (Django's request_finished), so the retry reconnects.
    """

    def get_response(self, request):
        for connection in connections.all(initialized_only=True):
            connection.health_check_done = True
        return super().get_response(request)

    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response)


class LanedApplication:
    """The project's WSGI application: a webhook path to WebhookHandler, any other to Django's own."""

    def __init__(self):
        self.full = WSGIHandler()
        self.webhooks = WebhookHandler()

    def __call__(self, environ, start_response):
        lane = self.webhooks if environ.get("PATH_INFO", "").startswith(WEBHOOK_PATH_PREFIXES) else self.full
        return lane(environ, start_response)

"""
The base of every provider webhook view: status codes and error bodies in one place.

200 accepted (a duplicate too), 400 unreadable body or missing field (JSON naming the
field), 403 authentication failed, 404 unknown provider, 413 body too large, 503
database unavailable so that the aggregator retries. Bad input never becomes a 500.
"""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from rest_framework.views import APIView

from delivery.phones import InvalidPhoneNumber
from delivery.providers import UnknownProvider, detect_provider, get_provider
from delivery.providers.base import Provider, ProviderError, WebhookBadRequest

logger = logging.getLogger(__name__)


def error_response(status: int, message: str, field: str | None = None) -> JsonResponse:
    body = {"error": message}
    if field:
        body["field"] = field
    return JsonResponse(body, status=status)


class BodyTooLarge(Exception):
    pass


class WebhookView(APIView):
    """
    POST-only, no DRF authentication or parsing: providers read the raw request
    themselves (signatures cover the raw bytes). Subclasses define `receive`.
    """

    authentication_classes = ()
    permission_classes = ()
    http_method_names = ["post", "options"]

    def post(self, request, provider: str | None = None):
        http_request: HttpRequest = request._request
        self.check_size(http_request)
        webhook_provider = self.resolve_provider(http_request, provider)
        webhook_provider.authenticate(http_request)
        return self.receive(http_request, webhook_provider)

    @staticmethod
    def check_size(request: HttpRequest) -> None:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > settings.WEBHOOK_MAX_BODY_BYTES or len(request.body) > settings.WEBHOOK_MAX_BODY_BYTES:
            raise BodyTooLarge

    @staticmethod
    def resolve_provider(request: HttpRequest, slug: str | None) -> Provider:
        if slug is None:
            return detect_provider(request)
        provider = get_provider(slug)
        if not provider.receives_webhooks:
            raise UnknownProvider(slug)
        return provider

    def handle_exception(self, exc):
        if isinstance(exc, UnknownProvider):
            return error_response(404, f"unknown provider '{exc}'")
        if isinstance(exc, (BodyTooLarge, RequestDataTooBig)):
            return error_response(413, f"body larger than {settings.WEBHOOK_MAX_BODY_BYTES} bytes")
        if isinstance(exc, WebhookBadRequest):
            return error_response(400, str(exc), exc.field)
        if isinstance(exc, ProviderError):
            logger.warning("webhook refused (%s): %s", exc.status_code, exc)
            return error_response(exc.status_code, str(exc))
        if isinstance(exc, InvalidPhoneNumber):
            return error_response(400, str(exc), "from")
        if isinstance(exc, (OperationalError, InterfaceError)):
            logger.error("database unavailable during webhook: %s", exc)
            return error_response(503, "database unavailable, retry later")
        if isinstance(exc, DatabaseError):
            logger.exception("database refused a webhook's data")
            return error_response(400, "the data could not be stored")
        return super().handle_exception(exc)

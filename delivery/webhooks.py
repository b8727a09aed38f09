"""
The base of every provider webhook view: status codes and error bodies in one place.

200 accepted (a duplicate too), 400 unreadable body or missing field (JSON naming the
field), 403 authentication failed, 404 unknown provider, 413 body too large, 503
database unavailable so that the aggregator retries. Bad input never becomes a 500.
"""

import ipaddress
import logging
import time
from functools import cache

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from rest_framework.views import APIView

from delivery.channel_log import channel_log_refusal, channel_log_webhook
from delivery.phones import InvalidPhoneNumber
from delivery.providers import UnknownProvider, detect_provider, get_provider
from delivery.providers.base import Provider, ProviderError, WebhookBadRequest, WebhookForbidden
from delivery.providers.replay import nonces_release

logger = logging.getLogger(__name__)


def error_response(status: int, message: str, field: str | None = None) -> JsonResponse:
    body = {"error": message}
    if field:
        body["field"] = field
    return JsonResponse(body, status=status)


class BodyTooLarge(Exception):
    pass


@cache
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _in(address: str, entries: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(entries)))


def client_address(request: HttpRequest) -> str:
    """
    The caller's address. X-Forwarded-For is believed only from TRUSTED_PROXIES, and
    then read from the right, skipping our own proxies, so a client cannot forge it.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    if not _in(peer, settings.TRUSTED_PROXIES):
        return peer
    forwarded = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(forwarded):
        if not _in(hop, settings.TRUSTED_PROXIES):
            return hop
    return forwarded[0] if forwarded else peer


def check_source_address(request: HttpRequest) -> None:
    """ALLOWLISTED_IPS (IPs and CIDRs), when set, applies to every webhook."""
    if settings.ALLOWLISTED_IPS and not _in(client_address(request), settings.ALLOWLISTED_IPS):
        raise WebhookForbidden(f"source address {client_address(request)} is not allowed")


class WebhookView(APIView):
    """
    POST-only, no DRF authentication or parsing: providers read the raw request
    themselves (signatures cover the raw bytes). Subclasses define `receive`.
    """

    authentication_classes = ()
    permission_classes = ()
    http_method_names = ["get", "post", "options"]
    log_kind: str  # ChannelLog.Kind of the requests this view receives

    def initial(self, request, *args, **kwargs):
        self.started = time.monotonic()
        self.provider_slug = kwargs.get("provider") or "unknown"
        self.message_id = None  # set by `receive` to link the channel log row
        super().initial(request, *args, **kwargs)

    def post(self, request, provider: str | None = None):
        http_request: HttpRequest = request._request
        self.check_size(http_request)
        webhook_provider = self.resolve_provider(http_request, provider)
        self.provider_slug = webhook_provider.slug
        if http_request.method not in webhook_provider.webhook_methods:
            return error_response(
                405, f"{webhook_provider.slug} webhooks take {', '.join(sorted(webhook_provider.webhook_methods))}"
            )
        check_source_address(http_request)
        webhook_provider.authenticate(http_request)
        self.authenticated = True
        # The stored rows and their channel log row commit together: one commit per webhook.
        try:
            with transaction.atomic():
                response = self.receive(http_request, webhook_provider)
                self.log(http_request, response)
        except Exception:
            # Nothing was stored: the provider's retry of this very request must pass again.
            nonces_release(http_request)
            raise
        return response

    get = post

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.method in ("GET", "POST") and not getattr(self, "logged", False):
            self.log(request._request, response)  # refused or failed webhooks
        return response

    def log(self, request: HttpRequest, response) -> None:
        """
        An authenticated webhook is stored whole (masked); anything refused before that
        is a stranger's text, stored as metadata only and rate-limited.
        """
        self.logged = True
        if not getattr(self, "authenticated", False):
            channel_log_refusal(
                kind=self.log_kind,
                provider=self.provider_slug,
                request=request,
                status_code=response.status_code,
                source=client_address(request),
                reason=response.content.decode("utf-8", "replace")[:500],
            )
            return
        channel_log_webhook(
            kind=self.log_kind,
            provider=self.provider_slug,
            request=request,
            response=response,
            elapsed_ms=int((time.monotonic() - getattr(self, "started", time.monotonic())) * 1000),
            message_id=getattr(self, "message_id", None),
            error="" if response.status_code < 400 else response.content.decode("utf-8", "replace")[:500],
        )

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
        """The URL's provider; on /sms-handler and /sms-dlr, the one whose credential the request presents."""
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
        if isinstance(exc, (MultiPartParserError, BadRequest, SuspiciousOperation)):
            # Django's own refusals of a request it cannot read (a broken multipart body, too
            # many fields, a Host not allowed): the caller's fault, answered like any bad body.
            return error_response(400, f"unreadable request: {exc}")
        if isinstance(exc, (OperationalError, InterfaceError)):
            logger.error("database unavailable during webhook: %s", exc)
            return error_response(503, "database unavailable, retry later")
        if isinstance(exc, DatabaseError):
            logger.exception("database refused a webhook's data")
            return error_response(400, "the data could not be stored")
        return super().handle_exception(exc)

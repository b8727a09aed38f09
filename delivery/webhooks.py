"""
The base of every provider webhook view: status codes and error bodies in one place.

200 accepted (a duplicate too), 400 unreadable body or missing field (JSON naming the
field), 403 authentication failed or the provider's secret unset, 404 unknown provider,
405 a method the provider does not use, 413 body too large, 503 database unavailable
so that the aggregator retries. Bad input never becomes a 500.

One webhook, in order: size, provider (from the URL, or by the credential presented on
/sms-handler and /sms-dlr), method, source address, the provider's fail-closed refusal,
`Provider.authenticate`, then the subclass's `receive` and the provider's `ack`. The
view turns the Django request into a `WebhookRequest` once; providers never see Django.
"""

import ipaddress
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cache
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from delivery.channel_log import channel_log_refusal, channel_log_webhook, channel_log_webhook_row
from delivery.events import event
from delivery.models import ChannelLog
from delivery.phones import InvalidPhoneNumber
from delivery.providers import UnknownProvider, detect_provider, get_provider
from delivery.providers.base import (
    Provider,
    ProviderError,
    Verified,
    WebhookBadRequest,
    WebhookForbidden,
    WebhookRequest,
    webhook_request_from,
)
from delivery.providers.replay import nonces_release

logger = logging.getLogger(__name__)


def error_response(status: int, message: str, field: str | None = None) -> JsonResponse:
    body = {"error": message}
    if field:
        body["field"] = field
    return JsonResponse(body, status=status)


class BodyTooLarge(Exception):
    pass


# The `reason` of a webhook.refused event, by the status code the webhook was answered with.
REFUSAL_REASONS = {
    400: "bad_request",
    403: "forbidden",
    404: "unknown_provider",
    405: "method",
    413: "too_large",
    503: "unavailable",
}


def webhook_refused_event(*, provider: str, kind: str, status_code: int) -> None:
    """Tell the log and the metrics that a webhook was refused; `provider` is a known slug or "unknown"."""
    known = provider if provider in settings.SMS_PROVIDER_SLUGS else "unknown"
    reason = REFUSAL_REASONS.get(status_code, "bad_request")
    event("webhook.refused", provider=known, kind=kind, reason=reason, status_code=status_code)


class MethodNotTaken(ProviderError):
    """A method this provider never uses for its webhooks (most take POST only)."""

    status_code = 405


@cache
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _in(address: str, entries: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(entries)))


def address_allowed(address: str, entries: list[str]) -> bool:
    """Whether `address` is one of `entries` (IPs and CIDRs); never for an unreadable address."""
    return _in(address, entries)


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


def check_source_address(address: str) -> None:
    """ALLOWLISTED_IPS (IPs and CIDRs), when set, applies to every webhook."""
    if settings.ALLOWLISTED_IPS and not _in(address, settings.ALLOWLISTED_IPS):
        raise WebhookForbidden(f"source address {address} is not allowed")


def check_size(request: HttpRequest) -> None:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > settings.WEBHOOK_MAX_BODY_BYTES or len(request.body) > settings.WEBHOOK_MAX_BODY_BYTES:
        raise BodyTooLarge


def resolve_provider(webhook: WebhookRequest, slug: str | None) -> Provider:
    """The URL's provider; on /sms-handler and /sms-dlr, the one whose credential the request presents."""
    if slug is None:
        return detect_provider(webhook)
    provider = get_provider(slug)
    if not provider.receives_webhooks:
        raise UnknownProvider(slug)
    return provider


def webhook_error_response(exc: Exception) -> JsonResponse | None:
    """The answer to a webhook that raised `exc`; None for an error that is ours (a 500)."""
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
    return None


@dataclass
class _Progress:
    """How far one webhook got, for its channel log row."""

    provider: str
    source: str = ""
    authenticated: bool = False
    message_id: int | None = None


@method_decorator(csrf_exempt, name="dispatch")
class WebhookView(View, ABC):
    """
    A provider's webhook (POST; GET too for providers that report with GET). Subclasses set
    `log_kind` and define `receive(provider, webhook, verified, log_row) -> Message id or
    None`, which stores what the webhook carries together with its channel log row, so an
    accepted webhook and its log commit together.

    The channel log: an authenticated webhook is stored whole (masked); anything refused
    before that is a stranger's text, stored as metadata only and rate-limited.
    """

    http_method_names = ["get", "post", "options"]
    log_kind: ClassVar[str]  # ChannelLog.Kind of the requests this view receives

    def post(self, request: HttpRequest, provider: str | None = None) -> HttpResponse:
        started = time.monotonic()
        progress = _Progress(provider=provider or "unknown")
        try:
            response = self.accept(request, provider, progress, started)
        except Exception as exc:
            response = webhook_error_response(exc)
            if response is None:
                raise
            self.log(request, response, progress, started)
            webhook_refused_event(provider=progress.provider, kind=str(self.log_kind), status_code=response.status_code)
        return response

    get = post

    def accept(self, request: HttpRequest, slug: str | None, progress: _Progress, started: float) -> HttpResponse:
        progress.source = client_address(request)
        # The webhook lane has no CommonMiddleware to refuse a Host not in ALLOWED_HOSTS.
        request.get_host()
        check_size(request)
        webhook = webhook_request_from(request, remote_addr=progress.source)
        provider = resolve_provider(webhook, slug)
        progress.provider = provider.slug
        if webhook.method not in provider.webhook_methods:
            raise MethodNotTaken(f"{provider.slug} webhooks take {', '.join(sorted(provider.webhook_methods))}")
        check_source_address(progress.source)
        refusal = provider.webhook_refusal()
        if refusal:
            raise WebhookForbidden(f"{provider.slug}: {refusal}")
        verified = provider.authenticate(webhook)
        progress.authenticated = True
        event("webhook.received", provider=provider.slug, kind=str(self.log_kind))
        ack = provider.ack()
        response = HttpResponse(ack.body, content_type=ack.content_type)
        log_row = channel_log_webhook_row(
            kind=self.log_kind,
            provider=provider.slug,
            request=request,
            response=response,
            elapsed_ms=int((time.monotonic() - started) * 1000),
        )
        try:
            progress.message_id = self.receive(provider, webhook, verified, log_row)
        except Exception:
            # Nothing was stored: the provider's retry of this very request must pass again.
            nonces_release(verified.nonces)
            raise
        return response

    @abstractmethod
    def receive(
        self, provider: Provider, webhook: WebhookRequest, verified: Verified, log_row: ChannelLog
    ) -> int | None:
        """
        Store what the webhook carries and `log_row` (its message set) in one commit; the id
        of the Message it concerns. Raising stores neither.
        """

    def http_method_not_allowed(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = error_response(405, f"method {request.method} not allowed")
        response["Allow"] = ", ".join(self._allowed_methods())
        webhook_refused_event(provider=kwargs.get("provider") or "unknown", kind=str(self.log_kind), status_code=405)
        return response

    def log(self, request: HttpRequest, response: HttpResponse, progress: _Progress, started: float) -> None:
        if not progress.authenticated:
            channel_log_refusal(
                kind=self.log_kind,
                provider=progress.provider,
                request=request,
                status_code=response.status_code,
                source=progress.source or client_address(request),
                reason=response.content.decode("utf-8", "replace")[:500],
            )
            return
        channel_log_webhook(
            kind=self.log_kind,
            provider=progress.provider,
            request=request,
            response=response,
            elapsed_ms=int((time.monotonic() - started) * 1000),
            message_id=progress.message_id,
            error="" if response.status_code < 400 else response.content.decode("utf-8", "replace")[:500],
        )

"""
GET /metrics: Prometheus exposition of every process's metrics, and the gauges read now.

Protected: a request passes with `Authorization: Bearer <METRICS_TOKEN>` or from an
address in METRICS_ALLOWED_IPS (X-Forwarded-For believed only from TRUSTED_PROXIES).
With neither set it is refused (403) unless DEBUG is on, so a deployment that forgot
both exposes nothing.

With PROMETHEUS_MULTIPROC_DIR set, the counters of every gunicorn and Celery worker are
summed from that directory (MultiProcessCollector); without it, this process's own
registry is the whole story (the embedded default, one process).
"""

import hmac

import prometheus_client
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, multiprocess

from delivery.metrics import ScrapeCollector
from delivery.webhooks import address_allowed, client_address


def metrics_request_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        presented = request.headers.get("Authorization", "")
        if hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
            return True
    if settings.METRICS_ALLOWED_IPS and address_allowed(client_address(request), settings.METRICS_ALLOWED_IPS):
        return True
    return settings.DEBUG and not token and not settings.METRICS_ALLOWED_IPS


def _registries() -> list[CollectorRegistry]:
    if settings.PROMETHEUS_MULTIPROC_DIR:
        summed = CollectorRegistry()
        multiprocess.MultiProcessCollector(summed, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        summed = prometheus_client.REGISTRY
    now = CollectorRegistry()
    now.register(ScrapeCollector())
    return [summed, now]


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_request_allowed(request):
        return JsonResponse({"error": "metrics need a token or an allowed address"}, status=403)
    body = b"".join(prometheus_client.generate_latest(registry) for registry in _registries())
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)

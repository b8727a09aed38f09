"""GET /health/: 200 when the database, the cache and the broker answer; 503 naming what failed."""

import logging
import uuid

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

from delivery.providers import all_providers
from smsgate.celery import app as celery_app

logger = logging.getLogger(__name__)


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def check_cache() -> str:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("value written was not read back")
    cache.delete(key)
    return "ok"


def check_broker() -> str:
    if celery_app.conf.task_always_eager:
        return "ok (tasks run in-process)"
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


def webhook_readiness() -> dict[str, str]:
    """Each provider's webhooks: "ok", or why they are refused (fail closed). Informational, not a failure."""
    return {
        provider.slug: provider.webhook_refusal() or "ok" for provider in all_providers() if provider.receives_webhooks
    }


def health(request):
    results, failed = {}, []
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # any failure of a dependency is a finding, not a crash
            logger.warning("health check %s failed: %s", name, exc)
            results[name] = f"failed: {exc.__class__.__name__}: {exc}"[:300]
            failed.append(name)
    body = {"status": "ok" if not failed else "unavailable", "checks": results, "webhooks": webhook_readiness()}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)

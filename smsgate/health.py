"""
GET /health/: each dependency by name with whether it answered and how long it took;
200 when the database, the cache and the broker answer, 503 naming what failed.
GET /health/live: 200 whenever the process answers; it checks nothing (process managers).

    {"status": "ok" | "unavailable",
     "checks": {"database": {"ok": true, "latency_ms": 0.4, "detail": "ok"}, "cache": ..., "broker": ...},
     "providers": {"<slug>": {"ok": bool, "in_use": [shortcode, ...] | null, "send": "ok" | why,
                              "webhooks": "ok" | why}},
     "webhooks": {"<slug>": "ok" | why},
     "failed": ["broker", ...]}          # only when something failed

Every registered provider is listed; `in_use` names the active shortcodes that use it
(null when the database did not answer). A provider's missing credentials are shown, not
failed on: no restart fixes them, and a load balancer must not drop the instance for them.
"""

import logging
import time
import uuid

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import JsonResponse

from commands.models import Shortcode
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
        return "ok (no broker: tasks run in-process)"
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


def dependency_check(check) -> dict:
    """Run one check: {"ok", "latency_ms", "detail"}; a failure is a finding, never an exception."""
    started = time.perf_counter()
    try:
        detail, ok = check(), True
    except Exception as exc:  # any failure of a dependency is a finding, not a crash
        detail, ok = f"failed: {exc.__class__.__name__}: {exc}"[:300], False
    return {"ok": ok, "latency_ms": round((time.perf_counter() - started) * 1000, 1), "detail": detail}


def webhook_readiness() -> dict[str, str]:
    """Each provider's webhooks: "ok", or why they are refused (fail closed). Informational, not a failure."""
    return {
        provider.slug: provider.webhook_refusal() or "ok" for provider in all_providers() if provider.receives_webhooks
    }


def provider_readiness(*, database_ok: bool) -> dict[str, dict]:
    """Every registered provider: whether its send and webhook credentials are set, and which shortcodes use it."""
    in_use: dict[str, list[str]] | None = None
    if database_ok:
        try:
            active = Shortcode.objects.filter(active=True).order_by("number").values_list("number", "provider")
            in_use = {}
            for number, slug in active:
                in_use.setdefault(slug, []).append(number)
        except DatabaseError:  # went away since its check: the rest of the answer still stands
            in_use = None
    readiness = {}
    for provider in all_providers():
        send = provider.send_refusal()
        webhooks = provider.webhook_refusal()
        readiness[provider.slug] = {
            "ok": send is None and webhooks is None,
            "in_use": None if in_use is None else in_use.get(provider.slug, []),
            "send": send or "ok",
            "webhooks": webhooks or "ok",
        }
    return readiness


def health(request):
    checks = {name: dependency_check(check) for name, check in CHECKS.items()}
    failed = [name for name, result in checks.items() if not result["ok"]]
    for name in failed:
        logger.warning("health check %s failed: %s", name, checks[name]["detail"])
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": checks,
        "providers": provider_readiness(database_ok="database" not in failed),
        "webhooks": webhook_readiness(),
    }
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)


def live(request):
    """The process answers: nothing else is checked, so a slow database never gets it restarted."""
    return JsonResponse({"status": "ok"})

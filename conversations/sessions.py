"""
Conversation state per (shortcode, phone), kept in the cache (Redis in production) as
JSON with the shortcode's time-out. A session exists only while a flow waits for the
next SMS; it is cleared when the flow ends and simply expires when the subscriber stops.

The stored JSON carries its own expiry (`expires_at`, epoch seconds), and a session past
it is gone even if the cache still holds it: the time-out is exact whatever the cache's
clock does, and the cache's own timeout (the same TTL) only frees the memory.
"""

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.cache import cache


@dataclass(frozen=True)
class Session:
    command_id: int
    code: str
    step: str
    state: dict[str, Any] = field(default_factory=dict)


def session_key(shortcode: str, phone: str) -> str:
    return f"session:{shortcode}:{phone}"


def session_get(*, shortcode: str, phone: str) -> Session | None:
    raw = cache.get(session_key(shortcode, phone))
    if not raw:
        return None
    try:
        stored = json.loads(raw)
        # A session saved before sessions carried their expiry is bounded by the cache's timeout alone.
        expires_at = float(stored.pop("expires_at", "inf"))
        session = Session(**stored)
    except (TypeError, ValueError, AttributeError):
        session_clear(shortcode=shortcode, phone=phone)
        return None
    if time.time() >= expires_at:
        session_clear(shortcode=shortcode, phone=phone)
        return None
    return session


def session_save(*, shortcode: str, phone: str, session: Session, ttl: int) -> None:
    stored = asdict(session) | {"expires_at": time.time() + ttl}
    cache.set(session_key(shortcode, phone), json.dumps(stored), timeout=ttl)


def session_clear(*, shortcode: str, phone: str) -> None:
    cache.delete(session_key(shortcode, phone))


def sessions_count() -> int | None:
    """
    Sessions the cache holds (one past its time-out but not yet evicted included), or None
    when the cache cannot list its keys (local memory). Redis is walked with SCAN, which
    never blocks it for long.
    """
    iter_keys = getattr(cache, "iter_keys", None)
    if iter_keys is None:
        return None
    return sum(1 for _ in iter_keys(session_key("*", "*")))

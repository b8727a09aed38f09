"""
Conversation state per (shortcode, phone), kept in the cache (Redis in production) as
JSON with the shortcode's time-out. A session exists only while a flow waits for the
next SMS; it is cleared when the flow ends and simply expires when the subscriber stops.
"""

import json
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
        return Session(**json.loads(raw))
    except (TypeError, ValueError):
        session_clear(shortcode=shortcode, phone=phone)
        return None


def session_save(*, shortcode: str, phone: str, session: Session, ttl: int) -> None:
    cache.set(session_key(shortcode, phone), json.dumps(asdict(session)), timeout=ttl)


def session_clear(*, shortcode: str, phone: str) -> None:
    cache.delete(session_key(shortcode, phone))

"""
Conversation state per (shortcode, phone), kept in the cache (Redis in production) as
JSON with the shortcode's time-out. A session exists only while a flow waits for the
next SMS; it is cleared when the flow ends and simply expires when the subscriber stops.

The stored JSON carries its own expiry (`expires_at`, epoch seconds), and a session past
it is gone even if the cache still holds it: the time-out is exact whatever the cache's
clock does, and the cache's own timeout (the same TTL) only frees the memory.

A flow session (`flow_id` set) is watched by a second key, the time-out notice, kept a
day longer: when the next SMS finds the session gone but the notice there, the flow
timed out, and that SMS gets the flow's time-out reply. Every way a flow ends on
purpose (completed, cancelled, gave up, opted out) clears both keys.
"""

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.cache import cache

# How long after a flow's time-out its next SMS is still told the flow timed out.
TIMEOUT_NOTICE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Session:
    """
    A conversation waiting for the phone's next SMS: a command's handler at `step`
    (`command_id`), or a flow (`flow_id`) at the step whose key is `step`, with the
    answers so far and the invalid tries at that step in `state`.
    """

    command_id: int | None
    code: str
    step: str
    state: dict[str, Any] = field(default_factory=dict)
    flow_id: int | None = None


def session_key(shortcode: str, phone: str) -> str:
    return f"session:{shortcode}:{phone}"


def session_get(*, shortcode: str, phone: str) -> Session | None:
    return _session_parse(shortcode, phone, cache.get(session_key(shortcode, phone)))


def session_open(*, shortcode: str, phone: str) -> tuple[Session | None, int | None]:
    """
    What the phone's next SMS resumes: (its session, None), or (None, the id of the flow
    whose session timed out since its last SMS, taken once as timeout_notice_take takes it,
    or None). Both keys are read in one cache round trip.
    """
    notice_key = timeout_notice_key(shortcode, phone)
    stored = cache.get_many([session_key(shortcode, phone), notice_key])
    session = _session_parse(shortcode, phone, stored.get(session_key(shortcode, phone)))
    if session is not None:
        return session, None
    raw_notice = stored.get(notice_key)
    if not raw_notice:
        return None, None
    cache.delete(notice_key)
    return None, _notice_flow_id(raw_notice)


def _session_parse(shortcode: str, phone: str, raw: str | None) -> Session | None:
    """The session stored as `raw`, or None: none, unreadable or past its time-out (then deleted)."""
    if not raw:
        return None
    try:
        stored = json.loads(raw)
        # A session saved before sessions carried their expiry is bounded by the cache's timeout alone.
        expires_at = float(stored.pop("expires_at", "inf"))
        session = Session(**stored)
    except (TypeError, ValueError, AttributeError):
        cache.delete(session_key(shortcode, phone))
        return None
    if time.time() >= expires_at:
        # Only the session: a flow's time-out notice outlives it (timeout_notice_take).
        cache.delete(session_key(shortcode, phone))
        return None
    return session


def session_save(*, shortcode: str, phone: str, session: Session, ttl: int) -> None:
    expires_at = time.time() + ttl
    stored = asdict(session) | {"expires_at": expires_at}
    cache.set(session_key(shortcode, phone), json.dumps(stored), timeout=ttl)
    if session.flow_id is not None:
        notice = {"flow_id": session.flow_id, "expires_at": expires_at}
        cache.set(timeout_notice_key(shortcode, phone), json.dumps(notice), timeout=ttl + TIMEOUT_NOTICE_SECONDS)


def session_clear(*, shortcode: str, phone: str) -> None:
    cache.delete_many([session_key(shortcode, phone), timeout_notice_key(shortcode, phone)])


def timeout_notice_key(shortcode: str, phone: str) -> str:
    return f"session-timeout:{shortcode}:{phone}"


def timeout_notice_take(*, shortcode: str, phone: str) -> int | None:
    """
    The id of the flow whose session for this phone timed out since its last SMS, once
    (the notice is removed); None when no flow timed out. Call it when no session is open.
    """
    key = timeout_notice_key(shortcode, phone)
    raw = cache.get(key)
    if not raw:
        return None
    cache.delete(key)
    return _notice_flow_id(raw)


def _notice_flow_id(raw: str) -> int | None:
    """The flow of a time-out notice taken from the cache, if its session is past its time-out."""
    try:
        notice = json.loads(raw)
        flow_id, expires_at = int(notice["flow_id"]), float(notice["expires_at"])
    except (TypeError, ValueError, KeyError):
        return None
    # A session cleared on purpose clears its notice too; one still live is not timed out.
    return flow_id if time.time() >= expires_at else None


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

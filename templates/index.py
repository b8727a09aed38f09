"""
The process-wide match index, built from the database and rebuilt when templates change.

Each process keeps one MatchIndex. A change to a template, header or entity (signals
connected in TemplatesConfig.ready, or an explicit index_invalidate() after bulk writes)
drops this process's copy at once and, once the transaction commits, bumps a version
key in the Django cache so every other process rebuilds on its next check. A process
compares its version with the cache's at most every DLT_INDEX_RECHECK_SECONDS (default
0: on every call, a few microseconds with the local-memory cache; with Redis a second
or two saves a round trip per message at the cost of that much staleness elsewhere).
"""

import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from templates.content import variable_max_length
from templates.matcher import MatchIndex, TemplateRow
from templates.models import Header, Template

logger = logging.getLogger(__name__)

VERSION_KEY = "templates:match-index-version"


@dataclass(frozen=True, slots=True)
class _State:
    index: MatchIndex | None = None
    version: str = ""
    max_length: int = 0
    checked_at: float = 0.0


_state = _State()
_build_lock = threading.Lock()


def index_rows() -> tuple[list[TemplateRow], list[str]]:
    """Every matchable template (approved or not; consent templates excluded) and the inactive headers: 3 queries."""
    active_headers: dict[int, str] = {}
    inactive_headers: list[str] = []
    for pk, sender_id, active in Header.objects.values_list("pk", "sender_id", "active"):
        if active:
            active_headers[pk] = sender_id
        else:
            inactive_headers.append(sender_id)
    headers_of: dict[int, list[str]] = defaultdict(list)
    for template_id, header_id in Template.headers.through.objects.values_list("template_id", "header_id"):
        if header_id in active_headers:
            headers_of[template_id].append(active_headers[header_id])
    rows = [
        TemplateRow(
            pk=pk,
            dlt_template_id=dlt_id,
            entity_id=pe_id,
            name=name,
            category=category,
            content=content,
            headers=tuple(sorted(headers_of.get(pk, ()))),
            approved=status == Template.Status.APPROVED,
        )
        for pk, dlt_id, pe_id, name, category, content, status in Template.objects.filter(is_consent=False)
        .values_list("pk", "dlt_template_id", "entity__pe_id", "name", "category", "content", "status")
        .iterator(chunk_size=2000)
    ]
    return rows, inactive_headers


def _shared_version() -> str | None:
    """The cluster-wide index version; None when the cache cannot be reached."""
    try:
        version = cache.get(VERSION_KEY)
        if version is None:
            # Evicted or never set: start a new version so every process rebuilds once.
            cache.add(VERSION_KEY, uuid.uuid4().hex, timeout=None)
            version = cache.get(VERSION_KEY)
        return version
    except Exception:  # noqa: BLE001 (any cache backend error: keep serving from this process's copy)
        logger.warning("DLT index: cache unreachable; using this process's index", exc_info=True)
        return None


def template_index() -> MatchIndex:
    """This process's MatchIndex, rebuilt first if templates changed or DLT_VARIABLE_MAX_LENGTH did."""
    global _state
    state = _state
    max_length = variable_max_length()
    now = time.monotonic()
    recheck = settings.DLT_INDEX_RECHECK_SECONDS
    if state.index is not None and state.max_length == max_length and recheck and now - state.checked_at < recheck:
        return state.index
    version = _shared_version()
    if state.index is not None and state.max_length == max_length and version in (state.version, None):
        _state = _State(state.index, state.version, max_length, now)
        return state.index
    with _build_lock:
        # Another thread may have rebuilt while this one waited.
        if _state.index is not None and _state.version == version and _state.max_length == max_length:
            return _state.index
        rows, inactive_headers = index_rows()
        index = MatchIndex(rows, max_length=max_length, inactive_headers=inactive_headers)
        _state = _State(index, version or "", max_length, now)
        return index


def _bump_shared_version() -> None:
    try:
        cache.set(VERSION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:  # noqa: BLE001 (a save must not fail because the cache is down; others catch up on rebuild)
        logger.warning("DLT index: could not publish a new version to the cache", exc_info=True)


def index_invalidate(**kwargs) -> None:
    """
    Drop this process's index now and tell other processes once the transaction commits.

    Also the receiver of the model signals (hence **kwargs). Bulk writes that send no
    signals (bulk_create, QuerySet.update) must call it themselves.
    """
    global _state
    _state = _State()
    # Before the commit other processes would rebuild from the old rows and keep them.
    transaction.on_commit(_bump_shared_version)

"""
Nonces already seen on signed webhooks, so that a captured request cannot be replayed
while its signature would still pass.

A nonce is claimed with `cache.add`, which stores a key only when it is absent (SET NX on
Redis, under a lock on the local-memory cache): of two requests carrying one nonce,
exactly one wins. The caller keeps a nonce for at least as long as a signature over it
is accepted; after that the signature check refuses the request on its own.

A claim is given back when the webhook fails after authentication (the database was
down: 503), so the provider's retry of that very request is accepted: nothing is lost.
"""

import hashlib

from django.core.cache import cache


def nonce_claim(*, scheme: str, nonce: str, ttl_seconds: int) -> str | None:
    """
    The cache key claimed the first time `nonce` is seen under `scheme` within
    `ttl_seconds` (kept in Verified.nonces for `nonces_release`); None for a replay.
    """
    # Hashed: the nonce is the sender's text, and cache keys must stay short and plain.
    digest = hashlib.sha256(nonce.encode()).hexdigest()
    key = f"webhook-nonce:{scheme}:{digest}"
    return key if cache.add(key, 1, timeout=max(1, int(ttl_seconds))) else None


def nonces_release(keys: tuple[str, ...]) -> None:
    """Give back the nonces a webhook claimed: it failed, and its retry must pass."""
    if keys:
        cache.delete_many(list(keys))

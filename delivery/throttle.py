"""
Shared limits in the cache: an outbound token bucket per shortcode (messages per
second across every worker) and fixed-window counters for inbound rate limits.

With Redis the bucket is one Lua script, atomic across processes. The local-memory
cache (embedded default, a single process) gets the same arithmetic under a lock.
"""

import threading
import time

from django.core.cache import cache, caches

# KEYS[1] bucket; ARGV: rate per second, capacity, now (s), cost, floor. Returns seconds to
# wait (0 = tokens taken).
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local floor = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * rate)
local wait = 0
if tokens - cost >= floor then
  tokens = tokens - cost
else
  wait = (cost + floor - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 10)
return tostring(wait)
"""

_local_lock = threading.Lock()
_local_buckets: dict[str, tuple[float, float]] = {}


def _redis():
    """The raw Redis connection behind the cache, or None for the local-memory cache."""
    # `cache` is a proxy: the backend's class is that of caches["default"].
    if "RedisCache" not in caches["default"].__class__.__name__:
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def token_bucket_wait(
    key: str, *, rate: float, capacity: float | None = None, cost: float = 1.0, floor: float = 0.0
) -> float:
    """
    Take `cost` tokens from bucket `key` refilled at `rate` per second, leaving at least
    `floor` in it; seconds to wait if they are not there. A caller with a floor never takes
    the last `floor` tokens, so callers without one always find them (replies ahead of
    batches). A cost over what the bucket can ever hold above the floor is charged as that.
    """
    capacity = capacity or max(rate, 1.0)
    floor = min(max(floor, 0.0), capacity * 0.9)
    cost = min(max(cost, 0.0), capacity - floor)
    now = time.time()
    connection = _redis()
    if connection is not None:
        return float(connection.eval(BUCKET_SCRIPT, 1, f"smsgate:bucket:{key}", rate, capacity, now, cost, floor))
    with _local_lock:
        tokens, at = _local_buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * rate)
        wait = 0.0
        if tokens - cost >= floor:
            tokens -= cost
        else:
            wait = (cost + floor - tokens) / rate
        _local_buckets[key] = (tokens, now)
        return wait


def token_bucket_take(key: str, *, rate: float, max_wait: float = 2.0, cost: float = 1.0, floor: float = 0.0) -> float:
    """
    Block until `cost` tokens are taken (above `floor`, see token_bucket_wait), up to
    `max_wait` seconds; returns 0 on success or the remaining wait when it would take longer
    (the caller re-queues rather than hold a worker).
    """
    deadline = time.monotonic() + max_wait
    while True:
        wait = token_bucket_wait(key, rate=rate, cost=cost, floor=floor)
        if wait <= 0:
            return 0.0
        if time.monotonic() + wait > deadline:
            return wait
        time.sleep(wait)


def window_count(key: str, *, window_seconds: int) -> int:
    """Count one event in the current fixed window of `window_seconds`; returns the count so far."""
    bucket = int(time.time() // window_seconds)
    full_key = f"rate:{key}:{bucket}"
    if cache.add(full_key, 1, timeout=window_seconds * 2):
        return 1
    try:
        return cache.incr(full_key)
    except ValueError:  # expired between add and incr
        cache.add(full_key, 1, timeout=window_seconds * 2)
        return 1


def lock_acquire(key: str, *, timeout: int) -> bool:
    """A short cache lock (`SET NX EX` on Redis); False when someone else holds it."""
    return cache.add(f"lock:{key}", "1", timeout=timeout)


def lock_release(key: str) -> None:
    cache.delete(f"lock:{key}")


def locks_acquire(keys: list[str], *, timeout: int) -> list[str]:
    """lock_acquire for many keys in one round trip (a pipeline on Redis); the keys it took."""
    connection = _redis()
    if connection is None:
        return [key for key in keys if lock_acquire(key, timeout=timeout)]
    pipeline = connection.pipeline(transaction=False)
    for key in keys:
        pipeline.set(cache.make_key(f"lock:{key}"), "1", nx=True, ex=timeout)
    return [key for key, taken in zip(keys, pipeline.execute(), strict=True) if taken]


def locks_release(keys: list[str]) -> None:
    """lock_release for many keys in one round trip."""
    if keys:
        cache.delete_many([f"lock:{key}" for key in keys])

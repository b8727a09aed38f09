"""
How every request we send to another system is signed: status callbacks, the `http`
handler, a flow's completion POST. One scheme, so a receiver checks all of them alike.

    X-Smsgate-Timestamp: 1767225600
    X-Smsgate-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>

The timestamp is inside the signed bytes, so a captured request cannot be replayed later
than the receiver's tolerance (SIGNATURE_TOLERANCE_SECONDS by default).
"""

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Smsgate-Timestamp"
SIGNATURE_HEADER = "X-Smsgate-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300


def signature_compute(*, secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def request_sign(*, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers to send with `body`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_compute(secret=secret, body=body, timestamp=timestamp),
    }


def signature_valid(
    *,
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    now: float | None = None,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - sent_at) > tolerance:
        return False
    expected = signature_compute(secret=secret, body=body, timestamp=sent_at)
    return hmac.compare_digest(expected, signature or "")

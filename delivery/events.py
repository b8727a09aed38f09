"""
The pipeline's events: one call where something happens to a message, read by the logs
and the metrics alike.

`event("inbound.stored", provider=..., shortcode=..., correlation_id=...)` writes one
log record on the `smsgate.events` logger (the record's `event` attribute is the name,
its `fields` attribute the fields: a JSON formatter renders both) and hands the same
name and fields to every listener (the Prometheus metrics register one). A listener that
fails never fails the pipeline.

An event about a message that has a status callback URL also says `callback=True`, so
the callback listener reads the message only then.

Event names and their fields (labels must stay bounded: no phone numbers, no free text;
`phone` is allowed in fields for the log, which masks it, and listeners never use it):

    webhook.received   provider, kind (inbound|status)
    webhook.refused    provider, kind, reason (forbidden|bad_request|too_large|unknown_provider|
                       method|unavailable), status_code
    inbound.stored     provider, shortcode, message_id, correlation_id, phone, duplicate (bool)
    inbound.handled    provider, shortcode, command (code or ""), outcome (replied|no_reply|
                       rate_limited|provider_mismatch|unknown_shortcode), duration_ms,
                       message_id, correlation_id, phone
    message.queued     provider, shortcode, message_id, correlation_id, phone, segments
    message.refused    provider, shortcode, reason (dlt_no_template|opted_out), message_id,
                       correlation_id, phone
    message.sent       provider, shortcode, outcome (sent|retry|failed|refused), duration_ms
                       (the provider API call), error_code, message_id, correlation_id, phone;
                       a `failed` one also says whether its last error was `transient`
    report.recorded    provider, status (ours, or "unknown"), applied (bool), message_id,
                       correlation_id
    report.applied     provider, shortcode, status, message_id, correlation_id, phone: a report
                       that arrived before its message's provider id, applied once the id is known
    suppression.added  shortcode, source (sms|provider|admin), phone
    endpoint.called    another system's endpoint was called (the `http` handler, a flow's
                       completion): its masked URL, outcome, status code and latency
"""

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("smsgate.events")

Listener = Callable[[str, dict[str, Any]], None]
_listeners: list[Listener] = []


def event_listener_add(listener: Listener) -> None:
    """Call `listener(name, fields)` for every event from now on (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def event(name: str, **fields: Any) -> None:
    """Record that `name` happened: one log line, and every listener told."""
    logger.info(name, extra={"event": name, "fields": fields})
    for listener in _listeners:
        try:
            listener(name, fields)
        except Exception:  # observability must never cost a message
            logger.exception("event listener %r failed on %s", listener, name)

"""
Error tracking with Sentry, on when SENTRY_DSN is set (settings.py calls sentry_init).

Nothing leaves unscrubbed: every string of an event and of a breadcrumb (messages, stack
frames' variables, request data, log records' extras) has the declared secrets, token-like
query values and phone numbers masked, at every log level, on top of the SDK's own
scrubbing of credential headers and cookies (send_default_pii stays off). An event
raised while a message is handled carries that message's correlation id as a tag.
"""

from typing import Any

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

from delivery.correlation import correlation_id_current
from delivery.redaction import phones_mask, redact, redact_query, secret_settings_declare, secret_values


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    """Start the Sentry SDK for Django and Celery with our scrubbing."""
    # The DSN names the project's key: masked wherever it would appear.
    secret_settings_declare("SENTRY_DSN")
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        traces_sample_rate=traces_sample_rate,
        before_send=event_scrub,
        before_send_transaction=event_scrub,
        before_breadcrumb=breadcrumb_scrub,
    )


def event_scrub(event: dict, hint: dict) -> dict:
    """An event as it may leave: scrubbed, and tagged with the correlation id bound now."""
    event = scrub(event, secret_values())
    correlation_id = correlation_id_current()
    if correlation_id:
        tags = event.get("tags")
        if not isinstance(tags, dict):
            tags = event["tags"] = {}
        tags.setdefault("correlation_id", correlation_id)
    return event


def breadcrumb_scrub(crumb: dict, hint: dict) -> dict:
    return scrub(crumb, secret_values())


def scrub(value: Any, secrets: list[str]) -> Any:
    """`value` (a decoded JSON-like structure) with secrets and phone numbers masked in every string, keys too."""
    if isinstance(value, str):
        return phones_mask(redact_query(redact(value, secrets)))
    if isinstance(value, dict):
        return {scrub(key, secrets) if isinstance(key, str) else key: scrub(v, secrets) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(item, secrets) for item in value]
    return value

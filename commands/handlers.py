"""
The handler registry: what a Command's `handler_key` can name.

A handler is a plain function `(HandlerContext) -> HandlerResult`. It returns the reply
text and, for a multi-step flow, the next step and the state to keep until the next SMS
from the same phone. Register one with `@handler("key")`; apps register theirs in
`AppConfig.ready()` by importing their handlers module.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandlerContext:
    shortcode: str  # the shortcode number
    phone: str  # E.164
    code: str  # the code or keyword the flow started with
    args: str  # text after the code; for a resumed step, the whole message
    config: dict[str, Any]  # Command.config
    step: str | None = None  # None on the first message of a flow
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HandlerResult:
    reply: str
    next_step: str | None = None  # set to keep the conversation open
    state: dict[str, Any] = field(default_factory=dict)
    # Named values for a command whose config replies through a DLT template.
    values: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[HandlerContext], HandlerResult]


@dataclass(frozen=True)
class RegisteredHandler:
    key: str
    func: Handler
    description: str


HANDLERS: dict[str, RegisteredHandler] = {}


def handler(key: str, *, description: str = "") -> Callable[[Handler], Handler]:
    """Register `func` under `key`; keys are unique."""

    def register(func: Handler) -> Handler:
        assert key not in HANDLERS or HANDLERS[key].func is func, f"handler {key!r} is registered twice"
        HANDLERS[key] = RegisteredHandler(key=key, func=func, description=description or (func.__doc__ or "").strip())
        return func

    return register


def handler_choices() -> list[tuple[str, str]]:
    return sorted((key, f"{key}: {registered.description.splitlines()[0]}") for key, registered in HANDLERS.items())


UNAVAILABLE_REPLY = "Sorry, this service is unavailable right now. Please try again later."


@handler("reply", description="Static text from config['text'].")
def reply_handler(ctx: HandlerContext) -> HandlerResult:
    return HandlerResult(reply=str(ctx.config.get("text", "")))


@handler(
    "http",
    description="POST {phone, code, args, shortcode} to config['endpoint']; reply is the JSON's 'reply'.",
)
def http_handler(ctx: HandlerContext) -> HandlerResult:
    fallback = ctx.config.get("fallback") or UNAVAILABLE_REPLY
    endpoint = ctx.config.get("endpoint")
    if not endpoint:
        logger.error("http handler for %s/%s has no endpoint configured", ctx.shortcode, ctx.code)
        return HandlerResult(reply=fallback)
    payload = {
        "phone": ctx.phone,
        "code": ctx.code,
        "args": ctx.args,
        "shortcode": ctx.shortcode,
    }
    headers = {str(k): str(v) for k, v in (ctx.config.get("headers") or {}).items()}
    timeout = float(ctx.config.get("timeout", settings.HANDLER_HTTP_TIMEOUT_SECONDS))
    try:
        response = requests.post(endpoint, json=payload, headers=headers, timeout=timeout)
        response.raise_for_status()
        reply = response.json().get("reply")
    except (requests.RequestException, ValueError, AttributeError) as exc:
        logger.warning(
            "http handler %s failed for %s/%s: %s",
            endpoint,
            ctx.shortcode,
            ctx.code,
            exc,
        )
        return HandlerResult(reply=fallback)
    if not isinstance(reply, str) or not reply.strip():
        logger.warning("http handler %s answered without a 'reply' text", endpoint)
        return HandlerResult(reply=fallback)
    return HandlerResult(reply=reply)

"""
The handler registry: what a Command's `handler_key` can name.

A handler is a plain function `(HandlerContext) -> HandlerResult`. It returns the reply
text and, for a multi-step flow, the next step and the state to keep until the next SMS
from the same phone. Register one with `@handler("key")`; apps register theirs in
`AppConfig.ready()` by importing their handlers module.

A handler runs inside its own transaction unless it is registered with
`transactional=False`: one that calls another system must not hold a database
transaction (and its locks) open while it waits, and one that only reads needs none
(it then costs no BEGIN and COMMIT). A handler may also register
`validate_config(config)`, which raises ValidationError for a Command.config it
cannot run with; Command.clean calls it, so nothing unsafe is saved.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
ConfigValidator = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RegisteredHandler:
    key: str
    func: Handler
    description: str
    transactional: bool = True  # run inside its own transaction
    validate_config: ConfigValidator | None = None  # raises ValidationError for a config it cannot run with


HANDLERS: dict[str, RegisteredHandler] = {}


def handler(
    key: str,
    *,
    description: str = "",
    transactional: bool = True,
    validate_config: ConfigValidator | None = None,
) -> Callable[[Handler], Handler]:
    """Register `func` under `key`; keys are unique."""

    def register(func: Handler) -> Handler:
        assert key not in HANDLERS or HANDLERS[key].func is func, f"handler {key!r} is registered twice"
        HANDLERS[key] = RegisteredHandler(
            key=key,
            func=func,
            description=description or (func.__doc__ or "").strip(),
            transactional=transactional,
            validate_config=validate_config,
        )
        return func

    return register


def handler_choices() -> list[tuple[str, str]]:
    return sorted((key, f"{key}: {registered.description.splitlines()[0]}") for key, registered in HANDLERS.items())


UNAVAILABLE_REPLY = "Sorry, this service is unavailable right now. Please try again later."


@handler("reply", description="Static text from config['text'].")
def reply_handler(ctx: HandlerContext) -> HandlerResult:
    return HandlerResult(reply=str(ctx.config.get("text", "")))

"""
Test data for the inbound pipeline: a shortcode with a few services, and, for India, the
DLT registration of every text it sends.

The services are small on purpose: `1` asks a name and answers with it (a two-step flow,
the `test_ask` handler below), `2` and `3` reply with a fixed text.
"""

import factory
from django.utils import timezone

from commands.handlers import UNAVAILABLE_REPLY, HandlerContext, HandlerResult, handler
from commands.models import Shortcode
from commands.tests.factories import CommandFactory, ShortcodeFactory
from conversations.models import Contact
from templates.tests.factories import dlt_registration

PHONE = "+919876543210"
SHORTCODE = "57675"
HEADER = "SMSGTE"

ASK_NAME = "Welcome! Please reply with your name."
BALANCE = "Your balance is Rs 120.00."
SUPPORT = "Please call 1800 180 1234 for support."


def registered(name: str) -> str:
    return f"Thank you {name}, you are registered."


@handler("test_ask", description="Ask config['prompt'], then reply config['done'] with the answer (two steps).")
def ask(ctx: HandlerContext) -> HandlerResult:
    answer = " ".join(ctx.args.split())
    if not answer:
        return HandlerResult(reply=ctx.config["prompt"], next_step="answer")
    return HandlerResult(reply=ctx.config["done"].format(answer=answer), values={"answer": answer})


# code, name, handler, config, aliases
SERVICES = [
    ("1", "Register", "test_ask", {"prompt": ASK_NAME, "done": registered("{answer}")}, ["REG"]),
    ("2", "Balance", "reply", {"text": BALANCE}, ["BAL"]),
    ("3", "Support", "reply", {"text": SUPPORT}, ["HELPDESK"]),
]

# The services' texts as DLT templates; the name is one variable.
SERVICE_TEMPLATES = [ASK_NAME, registered("{#var#}"), BALANCE, SUPPORT]


def shortcode_texts(shortcode: Shortcode) -> list[str]:
    """What the pipeline itself may answer on a shortcode: menu, unknown, help, opt-out/in, unavailable."""
    return [
        shortcode.menu_text,
        shortcode.unknown_text,
        shortcode.help_text,
        shortcode.opt_out_reply,
        shortcode.opt_in_reply,
        UNAVAILABLE_REPLY,
    ]


def service_shortcode(number: str = SHORTCODE, *, dlt: bool = False, **fields) -> Shortcode:
    """
    A shortcode with the services above, sending through `console` unless `provider` says otherwise.

    With `dlt`, it is DLT-bound under header SMSGTE, and each text it sends (its own and its
    services') is an approved service-implicit template of one entity.
    """
    fields.setdefault("provider", "console")
    shortcode = ShortcodeFactory(number=number, dlt_bound=dlt, sender_id=HEADER if dlt else "", **fields)
    for code, name, handler_key, config, aliases in SERVICES:
        CommandFactory(
            shortcode=shortcode, code=code, name=name, handler_key=handler_key, config=config, aliases=aliases
        )
    if dlt:
        dlt_registration(*shortcode_texts(shortcode), *SERVICE_TEMPLATES, sender_id=HEADER)
    return shortcode


class ContactFactory(factory.django.DjangoModelFactory):
    """A subscriber who completed registration."""

    class Meta:
        model = Contact
        django_get_or_create = ("phone",)

    phone = factory.Sequence(lambda n: f"+9198123{n:05d}")
    name = factory.Sequence(lambda n: f"Subscriber {n}")
    registered_at = factory.LazyFunction(timezone.now)

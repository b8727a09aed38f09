"""
The demo's services, as `seed_demo` configures them: register, balance and support.

They are thin: the pipeline's own services store the contact (`contact_register`) and
open the ticket (`ticket_open`); the balance is the demo's (`demo.models.Account`).
"""

from decimal import Decimal

from commands.handlers import HandlerContext, HandlerResult, handler
from conversations.contacts import contact_register, ticket_open
from conversations.models import Contact
from demo.models import Account

NAME_MAX = 100


@handler("register", description="Ask for a name and store the contact (two steps).")
def register(ctx: HandlerContext) -> HandlerResult:
    name = " ".join(ctx.args.split())[:NAME_MAX]
    if not name:
        prompt = ctx.config.get("prompt", "Welcome! Please reply with your name.")
        return HandlerResult(reply=prompt, next_step="name")
    contact_register(phone=ctx.phone, name=name)
    done = ctx.config.get("done", "Thank you {name}, you are registered.")
    return HandlerResult(reply=done.format(name=name))


@handler("balance", description="Reply with the contact's balance.")
def balance(ctx: HandlerContext) -> HandlerResult:
    contact = Contact.objects.filter(phone=ctx.phone, registered_at__isnull=False).first()
    if contact is None:
        return HandlerResult(reply=ctx.config.get("unregistered", "You are not registered yet. Send 1 to register."))
    account = Account.objects.filter(phone=ctx.phone).first()
    values = {"name": contact.name, "balance": account.balance if account else Decimal("0.00")}
    text = ctx.config.get("text", "Hi {name}, your balance is Rs {balance}.")
    return HandlerResult(reply=text.format(**values), values=values)


@handler("support", description="Ask for the issue and open a ticket (two steps).")
def support(ctx: HandlerContext) -> HandlerResult:
    issue = ctx.args.strip()
    if not issue:
        prompt = ctx.config.get("prompt", "Please describe your issue in one SMS.")
        return HandlerResult(reply=prompt, next_step="issue")
    ticket = ticket_open(phone=ctx.phone, shortcode=ctx.shortcode, issue=issue)
    done = ctx.config.get("done", "Ticket {reference} opened. Our team will call you back.")
    return HandlerResult(reply=done.format(reference=ticket.reference))

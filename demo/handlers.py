"""
The demo's in-process service, as `seed_demo` configures it: the balance.

Register and support are flows (`seed_demo` builds them, conversations/flows.py runs
them); the balance is the demo's own data (`demo.models.Account`).
"""

from decimal import Decimal

from commands.handlers import HandlerContext, HandlerResult, handler
from conversations.models import Contact
from demo.models import Account


# It only reads: no transaction of its own.
@handler("balance", description="Reply with the contact's balance.", transactional=False)
def balance(ctx: HandlerContext) -> HandlerResult:
    contact = Contact.objects.filter(phone=ctx.phone, registered_at__isnull=False).first()
    if contact is None:
        return HandlerResult(reply=ctx.config.get("unregistered", "You are not registered yet. Send 1 to register."))
    account = Account.objects.filter(phone=ctx.phone).first()
    values = {"name": contact.name, "balance": account.balance if account else Decimal("0.00")}
    text = ctx.config.get("text", "Hi {name}, your balance is Rs {balance}.")
    return HandlerResult(reply=text.format(**values), values=values)

from decimal import Decimal

from django.db import models
from django.utils.translation import gettext_lazy as _


class Account(models.Model):
    """
    A demo subscriber's balance, by phone (E.164): what the demo's `balance` service reads.

    Balances are demo data: the pipeline knows a subscriber only as a conversations
    Contact. A phone without an account has a balance of zero.
    """

    phone = models.CharField(_("phone"), max_length=20, unique=True)
    balance = models.DecimalField(_("balance"), max_digits=12, decimal_places=2, default=Decimal("0.00"))

    class Meta:
        ordering = ("phone",)
        verbose_name = _("demo account")
        verbose_name_plural = _("demo accounts")

    def __str__(self):
        return f"{self.phone}: {self.balance}"

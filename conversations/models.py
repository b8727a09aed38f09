from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Contact(models.Model):
    """
    A subscriber, known by phone (E.164) from the first SMS we handle from them.

    `registered_at` is set once they complete the register flow, together with `name`.
    """

    phone = models.CharField(_("phone"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=100, blank=True)
    first_seen = models.DateTimeField(_("first seen"), auto_now_add=True)
    registered_at = models.DateTimeField(_("registered"), null=True, blank=True)

    class Meta:
        ordering = ("-first_seen",)
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            models.CheckConstraint(
                condition=Q(registered_at__isnull=True) | ~Q(name=""),
                name="contact_registered_has_name",
            ),
        ]

    def __str__(self):
        return f"{self.name or '—'} {self.phone}"


class SupportTicket(models.Model):
    """An issue a subscriber reported by SMS (the `support` flow). `reference` is what we reply with."""

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        CLOSED = "closed", _("closed")

    reference = models.CharField(_("reference"), max_length=20, unique=True, null=True, blank=True)
    phone = models.CharField(_("phone"), max_length=20, db_index=True)
    shortcode = models.CharField(_("shortcode"), max_length=15)
    issue = models.TextField(_("issue"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(_("opened"), auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("support ticket")
        verbose_name_plural = _("support tickets")

    def __str__(self):
        return self.reference or f"ticket {self.pk}"

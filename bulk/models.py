from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Batch(models.Model):
    """
    One bulk send: a text (or an approved DLT template) to many recipients from one shortcode.

    accepted > running > done
                  |  ^
                  v  |
       paused_for_window        (a promotional batch outside 09:00-21:00 IST waits, drops nothing)
    accepted | running | paused_for_window > cancelled

    `done` and `cancelled` are final. Every move is one conditional UPDATE (bulk.services),
    so a tick that runs twice, or a cancel racing a tick, changes nothing twice.

    The dispatcher hands recipients over in id order: `cursor` is the id of the last
    recipient a tick claimed, and moving it (WHERE cursor = <what the tick read>) is the
    claim, so a redelivered tick hands nobody over twice. `next_tick_at` paces the ticks
    (BULK_TICK_SECONDS apart, or the window's opening). The client is kept as plain data:
    bulk knows nothing of the API's models.
    """

    class State(models.TextChoices):
        ACCEPTED = "accepted", _("accepted")
        RUNNING = "running", _("running")
        PAUSED_FOR_WINDOW = "paused_for_window", _("paused for the promotional window")
        DONE = "done", _("done")
        CANCELLED = "cancelled", _("cancelled")

    ACTIVE_STATES = (State.ACCEPTED, State.RUNNING, State.PAUSED_FOR_WINDOW)

    shortcode = models.CharField(_("shortcode"), max_length=15)
    text = models.TextField(_("text"), blank=True, help_text=_("With {name} placeholders filled per recipient."))
    dlt_template_id = models.CharField(_("DLT template ID"), max_length=30, blank=True)
    variables = models.JSONField(_("variables"), default=dict, blank=True, help_text=_("Shared by every recipient."))
    reference = models.CharField(_("caller's reference"), max_length=100, blank=True)
    callback_url = models.URLField(_("status callback URL"), max_length=500, blank=True)
    client_id = models.PositiveIntegerField(_("API client id"), null=True, blank=True)
    client_name = models.CharField(_("sent by"), max_length=150, blank=True)
    state = models.CharField(_("state"), max_length=17, choices=State.choices, default=State.ACCEPTED)
    total = models.PositiveIntegerField(_("recipients"), default=0)
    cursor = models.BigIntegerField(_("handed over up to recipient"), default=0)
    next_tick_at = models.DateTimeField(_("next tick"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("batch")
        verbose_name_plural = _("batches")
        permissions = [("cancel_batch", _("Can cancel a batch"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["accepted", "running", "paused_for_window", "done", "cancelled"]),
                name="batch_state_valid",
            ),
            models.CheckConstraint(condition=~Q(text="", dlt_template_id=""), name="batch_has_text_or_template"),
            models.CheckConstraint(
                condition=Q(state__in=["done", "cancelled"]) | Q(finished_at__isnull=True),
                name="batch_finished_only_when_final",
            ),
        ]
        indexes = [
            # The periodic tick looks for batches still to hand over.
            models.Index(
                fields=("next_tick_at",),
                condition=Q(state__in=["accepted", "running", "paused_for_window"]),
                name="batch_active_due",
            ),
        ]

    def __str__(self):
        return f"batch {self.pk} from {self.shortcode}"


class BatchRecipient(models.Model):
    """
    One number of a batch, with its own variables.

    pending > message            (handed over: `message` is the outbound Message)
            > suppressed         (opted out of the shortcode: skipped, counted)
            > cancelled          (the batch was cancelled first)
    invalid | duplicate          (decided when the batch is accepted; never sent)

    Only `pending` moves, and only forward. `phone` is E.164, or what was given when it is
    not a number (`invalid`, with `error`).
    """

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        MESSAGE = "message", _("handed over")
        SUPPRESSED = "suppressed", _("suppressed")
        INVALID = "invalid", _("invalid number")
        DUPLICATE = "duplicate", _("duplicate number")
        CANCELLED = "cancelled", _("cancelled")

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="recipients", verbose_name=_("batch"))
    phone = models.CharField(_("phone"), max_length=40)
    variables = models.JSONField(_("variables"), default=dict, blank=True)
    reference = models.CharField(_("caller's reference"), max_length=100, blank=True)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    error = models.CharField(_("why not sent"), max_length=200, blank=True)
    message = models.OneToOneField(
        "delivery.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="batch_recipient",
        verbose_name=_("message"),
    )

    class Meta:
        ordering = ("id",)
        verbose_name = _("recipient")
        verbose_name_plural = _("recipients")
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["pending", "message", "suppressed", "invalid", "duplicate", "cancelled"]),
                name="batch_recipient_state_valid",
            ),
        ]
        indexes = [
            # The dispatcher's scan: a batch's next pending recipients after its cursor, in id order.
            models.Index(fields=("batch", "id"), condition=Q(state="pending"), name="batch_recipient_pending"),
            # Progress counts per state.
            models.Index(fields=("batch", "state"), name="batch_recipient_state"),
        ]

    def __str__(self):
        return f"{self.phone} ({self.state})"

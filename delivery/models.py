import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from delivery.redaction import phones_mask
from delivery.statuses import INBOUND_STATUSES, OUTBOUND_STATUSES, PENDING_STATUSES, Direction, Status


class Message(models.Model):
    """
    One SMS, in or out; the log support agents read.

    Inbound:   received > handled | rate_limited
    Outbound:  queued > sending > sent > delivered
                  |         |        '--> undelivered | rejected
                  |         '--> failed
                  '--> refused (suppressed number, no DLT template: never sent)
    `delivered`, `undelivered`, `failed`, `rejected` and `refused` are final. Status only moves
    forward (see delivery.reports.message_status_advance), so a late `sent` never
    overwrites `delivered` and a duplicate report changes nothing. The words themselves
    live in delivery.statuses.

    An inbound row is written before any work is queued and is unique per
    (provider, provider_message_id), which makes aggregator retries harmless.
    Deleted after RETENTION_PERIODS["message"] days (delivery.retention).
    """

    class Encoding(models.TextChoices):
        GSM7 = "gsm7", "GSM-7"
        UCS2 = "ucs2", "UCS-2"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    direction = models.CharField(_("direction"), max_length=3, choices=[(d.value, d.label) for d in Direction])
    shortcode = models.CharField(_("shortcode"), max_length=15)
    phone = models.CharField(_("phone"), max_length=20, help_text=_("E.164"))
    body = models.TextField(_("text"), blank=True)
    status = models.CharField(_("status"), max_length=12, choices=[(s.value, s.label) for s in Status])
    provider = models.CharField(_("provider"), max_length=30)
    provider_message_id = models.CharField(_("provider message id"), max_length=100, null=True, blank=True)
    provider_options = models.JSONField(_("provider options"), default=dict, blank=True)
    in_reply_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replies",
        verbose_name=_("in reply to"),
    )
    command = models.CharField(
        _("command"),
        max_length=30,
        blank=True,
        help_text=_("Inbound: the code of the command that answered it (its first SMS or a later step)."),
    )
    error_code = models.CharField(_("error code"), max_length=50, blank=True)
    error_message = models.TextField(_("error"), blank=True)
    raw_payload = models.JSONField(_("raw payload"), default=dict, blank=True)
    reference = models.CharField(
        _("caller's reference"), max_length=100, blank=True, help_text=_("The sending system's own id, echoed back.")
    )
    callback_url = models.URLField(
        _("status callback URL"), max_length=500, blank=True, help_text=_("Each status change is POSTed there, signed.")
    )
    encoding = models.CharField(_("encoding"), max_length=4, choices=Encoding.choices, blank=True)
    segments = models.PositiveSmallIntegerField(_("segments"), default=0)
    dlt_template_id = models.CharField(_("DLT template ID"), max_length=30, blank=True)
    dlt_entity_id = models.CharField(_("DLT entity (PE) ID"), max_length=30, blank=True)
    dlt_category = models.CharField(_("DLT category"), max_length=30, blank=True)
    attempts = models.PositiveSmallIntegerField(_("send attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    send_after = models.DateTimeField(
        _("scheduled for"), null=True, blank=True, help_text=_("Held until then (promotional window).")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    handled_at = models.DateTimeField(_("handled"), null=True, blank=True)
    queued_at = models.DateTimeField(
        _("handling queued"),
        null=True,
        blank=True,
        help_text=_("Inbound: when the inbound dispatcher queued its handling on the broker."),
    )
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        permissions = [
            ("requeue_message", _("Can re-queue a message")),
            ("view_full_numbers", _("Can see phone numbers unmasked")),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(direction__in=list(Direction)), name="message_direction_valid"),
            models.CheckConstraint(
                condition=~Q(status=Status.DELIVERED) | Q(delivered_at__isnull=False),
                name="message_delivered_has_delivered_at",
            ),
            models.CheckConstraint(
                condition=Q(direction=Direction.INBOUND, status__in=INBOUND_STATUSES)
                | Q(direction=Direction.OUTBOUND, status__in=OUTBOUND_STATUSES),
                name="message_status_fits_direction",
            ),
            # Used to drop duplicate inbound webhooks and to find a message from its
            # delivery report.
            models.UniqueConstraint(
                fields=("provider", "direction", "provider_message_id"),
                condition=Q(provider_message_id__isnull=False),
                name="message_provider_id_unique",
            ),
        ]
        indexes = [
            # Support agents look a number's history up.
            models.Index(fields=("phone", "-created_at"), name="message_phone_created"),
            # The send API finds a caller's messages by their own id.
            models.Index(fields=("reference",), condition=~Q(reference=""), name="message_reference"),
            # The outbox sweep looks for rows stuck in a pending status.
            models.Index(
                fields=("status", "created_at"),
                condition=Q(status__in=PENDING_STATUSES),
                name="message_pending",
            ),
            # The inbound dispatcher's claim: stored rows not yet queued, oldest first. Small
            # however long the backlog of queued, unhandled rows (a worker outage) grows.
            models.Index(
                fields=("id",),
                condition=Q(direction=Direction.INBOUND, status=Status.RECEIVED, queued_at__isnull=True),
                name="message_inbound_unqueued",
            ),
        ]

    def __str__(self):
        # Masked: admin history ("Recent actions") and log lines store this text.
        arrow = "←" if self.direction == Direction.INBOUND else "→"
        return f"{arrow} {phones_mask(self.phone)} #{self.id or ''}"


class DeliveryReport(models.Model):
    """
    Every delivery report a provider sent us, exactly as received.

    Kept even when it changes nothing (duplicate, late, unknown status) or matches no
    message yet: a report can arrive before the send call has stored the provider's id.
    Its raw payload is emptied after RETENTION_PERIODS["report_payload"] days; the row goes
    with its message (delivery.retention).
    """

    message = models.ForeignKey(
        Message,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="reports",
        verbose_name=_("message"),
    )
    provider = models.CharField(_("provider"), max_length=30)
    provider_message_id = models.CharField(_("provider message id"), max_length=100, blank=True)
    reference = models.UUIDField(_("our reference"), null=True, blank=True)
    status = models.CharField(
        _("status"),
        max_length=12,
        blank=True,
        help_text=_("Ours; blank when not known."),
    )
    provider_status = models.CharField(_("provider status"), max_length=50, blank=True)
    error_code = models.CharField(_("error code"), max_length=50, blank=True)
    error_message = models.TextField(_("error"), blank=True)
    applied = models.BooleanField(_("moved the status"), default=False)
    raw_payload = models.JSONField(_("raw payload"), default=dict)
    received_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-received_at",)
        verbose_name = _("delivery report")
        verbose_name_plural = _("delivery reports")
        indexes = [
            # Reports that arrived before their message's provider id was known.
            models.Index(
                fields=("provider", "provider_message_id"),
                condition=Q(message__isnull=True),
                name="report_unmatched",
            ),
        ]

    def __str__(self):
        return f"{self.provider} {self.provider_message_id or self.reference}: {self.provider_status}"


class Suppression(models.Model):
    """
    A number that opted out: nothing is sent to it until it opts in again.

    `shortcode` blank means every shortcode (STOPALL). Opting in deletes the row; the
    history stays in the message log.
    """

    phone = models.CharField(_("phone"), max_length=20)
    shortcode = models.CharField(_("shortcode"), max_length=15, blank=True, help_text=_("Empty: all shortcodes."))
    keyword = models.CharField(_("keyword"), max_length=30, blank=True, help_text=_("The word they sent."))
    source = models.CharField(_("how"), max_length=30, default="sms", help_text=_("sms, provider, admin"))
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("opt-out message")
    )
    created_at = models.DateTimeField(_("opted out"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("suppressed number")
        verbose_name_plural = _("suppression list")
        constraints = [
            # Also the index for the check before every send.
            models.UniqueConstraint(fields=("phone", "shortcode"), name="suppression_unique_phone_shortcode"),
        ]

    def __str__(self):
        return f"{self.phone} ({self.shortcode or 'all'})"


class ChannelLog(models.Model):
    """
    One exchange with a provider: a webhook received or an API call made.

    Secrets (tokens, keys, Authorization headers, signatures) are masked before the
    row is written. Purged after settings.RETENTION_PERIODS["channel_log"].
    """

    class Kind(models.TextChoices):
        INBOUND = "inbound", _("inbound webhook")
        STATUS = "status", _("status webhook")
        SEND = "send", _("send call")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    provider = models.CharField(_("provider"), max_length=30)
    message = models.ForeignKey(
        Message,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="channel_logs",
        verbose_name=_("message"),
    )
    url = models.TextField(_("URL"), blank=True)
    request = models.TextField(_("request"), blank=True)
    response = models.TextField(_("response"), blank=True)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    elapsed_ms = models.PositiveIntegerField(_("elapsed (ms)"), default=0)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("channel log")
        verbose_name_plural = _("channel logs")

    def __str__(self):
        return f"{self.kind} {self.provider} {self.status_code or ''}"

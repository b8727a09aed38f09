from django.db import models
from django.utils.translation import gettext_lazy as _

from delivery.models import Message


class SubmittedPart(models.Model):
    """
    One part of an outbound message the SMSC accepted, with the id its submit_sm_resp gave.

    Written when the response arrives, before the next PDU is read: a receipt names the
    part's id, and a bind that restarts resubmits only the parts without a row. The
    message's own provider id is its first part's. Deleted with its message.
    """

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="smpp_parts", verbose_name=_("message"))
    shortcode = models.CharField(_("shortcode"), max_length=15)
    part = models.PositiveSmallIntegerField(_("part"))
    smsc_message_id = models.CharField(_("SMSC message id"), max_length=65, help_text=_("Lower-case."))
    created_at = models.DateTimeField(_("accepted"), auto_now_add=True)

    class Meta:
        ordering = ("message", "part")
        verbose_name = _("submitted SMPP part")
        verbose_name_plural = _("submitted SMPP parts")
        constraints = [
            models.UniqueConstraint(fields=("message", "part"), name="smpp_submitted_part_unique"),
        ]
        indexes = [
            # A delivery receipt finds its message by the part's SMSC id, within the bind's shortcode.
            models.Index(fields=("shortcode", "smsc_message_id"), name="smpp_part_smsc_id"),
        ]

    def __str__(self):
        return f"{self.smsc_message_id} (message {self.message_id} part {self.part})"


class InboundPart(models.Model):
    """
    One part of a concatenated MO: waiting > assembled > purged.

    Parts are keyed by the sender, the shortcode and the concatenation reference and count;
    an SMSC that delivers a part twice changes nothing. When every part is here the text is
    assembled and stored as one inbound message in the same transaction, and the parts are
    marked `assembled`: kept for smpp_gateway.inbound.CONCAT_WINDOW, so a part delivered
    again later is still recognised, then purged. References are reused (8 bits), so parts
    older than that window never join a new message.
    """

    shortcode = models.CharField(_("shortcode"), max_length=15)
    sender = models.CharField(_("sender"), max_length=21)
    reference = models.PositiveIntegerField(_("concatenation reference"))
    total = models.PositiveSmallIntegerField(_("parts"))
    seq = models.PositiveSmallIntegerField(_("part"))
    data_coding = models.PositiveSmallIntegerField(_("data coding"))
    payload = models.BinaryField(_("octets"))
    assembled = models.BooleanField(_("assembled"), default=False)
    received_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("shortcode", "sender", "reference", "seq")
        verbose_name = _("inbound SMPP part")
        verbose_name_plural = _("inbound SMPP parts")
        constraints = [
            models.UniqueConstraint(
                fields=("shortcode", "sender", "reference", "total", "seq"), name="smpp_inbound_part_unique"
            ),
        ]

    def __str__(self):
        return f"{self.sender} ref {self.reference} part {self.seq}/{self.total}"

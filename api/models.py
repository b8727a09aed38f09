"""
The send API's records: who may call it (ApiClient), which messages each sent
(ClientMessage), the answers kept for replays (IdempotencyKey) and every status callback
POSTed (CallbackAttempt).
"""

import hashlib
import re
import secrets

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from commands.models import Shortcode
from delivery.models import Message

# DRF's rate syntax: "600/min", "10/s", "5000/hour", "100000/day".
RATE_RE = re.compile(r"^[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)$")
# A client's callback secret is read from an environment variable with this prefix, so an
# admin can never have callbacks signed with one of the service's own credentials.
CALLBACK_SECRET_PREFIX = "CALLBACK_SECRET_"  # noqa: S105 (a name prefix, not a secret)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256. Tokens are 256 random bits, so no salt or slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiClient(models.Model):
    """
    A system that sends through the API with its own token.

    The token is shown once, on the admin page after it is made (token_set), and only its
    hash is kept: a lost token is replaced, never recovered. A client may send
    from its `shortcodes` only, at most `rate` requests (DRF throttling, in the cache).
    Status callbacks are signed with the value of the environment variable named by
    `callback_secret_env`; with that unset, callbacks are refused, never sent unsigned.
    """

    name = models.CharField(_("name"), max_length=100, unique=True)
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(
        _("token begins"), max_length=8, editable=False, help_text=_("To tell tokens apart; the rest is not kept.")
    )
    active = models.BooleanField(_("active"), default=True)
    shortcodes = models.ManyToManyField(
        Shortcode, related_name="api_clients", verbose_name=_("allowed shortcodes"), blank=True
    )
    rate = models.CharField(
        _("request rate"),
        max_length=20,
        default="600/min",
        validators=[RegexValidator(RATE_RE, _("Write requests per period: 600/min, 10/s, 5000/hour or 100000/day."))],
    )
    callback_secret_env = models.CharField(
        _("callback secret variable"),
        max_length=100,
        blank=True,
        validators=[
            RegexValidator(
                rf"^{CALLBACK_SECRET_PREFIX}[A-Z0-9_]+$",
                _("The name of an environment variable beginning with %(prefix)s.")
                % {"prefix": CALLBACK_SECRET_PREFIX},
            )
        ],
        help_text=_("Environment variable holding the secret that signs this client's callbacks (never the secret)."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        ordering = ("name",)
        verbose_name = _("API client")
        verbose_name_plural = _("API clients")

    def __str__(self):
        return self.name

    def token_set(self) -> str:
        """Give the client a new token (the old one stops working on save); returns it, the only time it is seen."""
        token = secrets.token_urlsafe(32)
        self.token_hash = token_hash(token)
        self.token_prefix = token[:8]
        return token


class ClientMessage(models.Model):
    """Which API client sent a message: what it may read back and whose secret signs its callbacks."""

    message = models.OneToOneField(
        Message, on_delete=models.CASCADE, primary_key=True, related_name="client_message", verbose_name=_("message")
    )
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="messages", verbose_name=_("client"))

    class Meta:
        verbose_name = _("client message")
        verbose_name_plural = _("client messages")

    def __str__(self):
        return f"{self.client} #{self.message_id}"


class IdempotencyKey(models.Model):
    """
    The first answer to a request sent with an `Idempotency-Key`, replayed to repeats.

    Unique per (client, key): of two racing requests the second waits on the constraint
    and then reads the first one's answer, which is stored in the same transaction as
    what it sent. Repeats must carry the same body (`request_hash`) or are refused (409).
    Kept IDEMPOTENCY_KEY_HOURS (24), then purged (api.tasks.idempotency_key_purge).
    """

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(_("key"), max_length=255)
    method = models.CharField(_("method"), max_length=10)
    path = models.CharField(_("path"), max_length=200)
    request_hash = models.CharField(_("request hash"), max_length=64)
    # Written with the request's own work, in its transaction: never seen unanswered.
    response_status = models.PositiveSmallIntegerField(_("response status"), default=0)
    response_body = models.JSONField(_("response body"), default=dict)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [models.UniqueConstraint(fields=("client", "key"), name="idempotency_key_unique_per_client")]

    def __str__(self):
        return self.key


class CallbackAttempt(models.Model):
    """
    One status change of a message, to be POSTed to its callback URL, and how that went.

        pending --POST 2xx--> delivered
           |  \\--error, attempts left--> pending (next_retry_at later, attempt + 1)
           \\--error, none left / refused--> failed

    The row is written in the same transaction as the status change's event, so no change
    is lost; its `payload` is the change as it was then, so late retries never report a
    newer status. A sweep (api.tasks.callback_sweep) sends again what is due when the
    broker lost the task.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")  # to be POSTed (again) at next_retry_at
        DELIVERED = "delivered", _("delivered")  # the receiver answered 2xx
        FAILED = "failed", _("failed")  # no attempts left, or the URL or secret was refused

    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="callback_attempts", verbose_name=_("message")
    )
    url = models.URLField(_("URL"), max_length=500)
    event = models.CharField(_("status reported"), max_length=20)
    payload = models.JSONField(_("payload"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveSmallIntegerField(_("attempts made"), default=0)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    response_excerpt = models.CharField(_("response excerpt"), max_length=500, blank=True)
    error = models.TextField(_("error"), blank=True)
    elapsed_ms = models.FloatField(_("elapsed ms"), null=True, blank=True)
    next_retry_at = models.DateTimeField(_("next retry"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("callback attempt")
        verbose_name_plural = _("callback attempts")
        indexes = [
            # The callback sweep looks for pending attempts whose retry time has come.
            models.Index(fields=("next_retry_at",), condition=Q(status="pending"), name="callback_pending_due"),
        ]

    def __str__(self):
        return f"{self.event} of #{self.message_id} to {self.url}"

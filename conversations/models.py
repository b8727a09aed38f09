from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _


class Contact(models.Model):
    """
    A subscriber, known by phone (E.164) from the first SMS we handle from them.

    `registered_at` is set once they complete the register flow, together with `name`.
    `attributes` keeps the answers of flows that save to the contact, by answer key.
    """

    phone = models.CharField(_("phone"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=100, blank=True)
    first_seen = models.DateTimeField(_("first seen"), auto_now_add=True)
    registered_at = models.DateTimeField(_("registered"), null=True, blank=True)
    attributes = models.JSONField(
        _("answers"), default=dict, blank=True, help_text=_("What flows saved about them, by answer key.")
    )

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
    """
    An issue a subscriber reported by SMS, which support agents work in the admin.

    Lifecycle: open -> in progress -> closed (an agent may reopen). `reference` is what
    the subscriber is told ("T000042"); `message` is the inbound SMS that opened it, so
    an agent can read the conversation around it. The subscriber's words (`issue`) and
    number are never edited.
    """

    class Status(models.TextChoices):
        OPEN = "open", _("open")  # waiting for an agent
        IN_PROGRESS = "in_progress", _("in progress")  # an agent is on it
        CLOSED = "closed", _("closed")  # resolved or dropped

    reference = models.CharField(_("reference"), max_length=20, unique=True, null=True, blank=True)
    phone = models.CharField(_("phone"), max_length=20, db_index=True)
    shortcode = models.CharField(_("shortcode"), max_length=15)
    issue = models.TextField(_("issue"))
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assignee"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="support_tickets",
    )
    message = models.ForeignKey(
        "delivery.Message",
        verbose_name=_("opened by message"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The inbound SMS whose answer opened the ticket."),
    )
    created_at = models.DateTimeField(_("opened"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("support ticket")
        verbose_name_plural = _("support tickets")
        indexes = [
            # The agents' work list: open tickets, newest first.
            models.Index(fields=["status", "-created_at"], name="ticket_status_created"),
        ]

    def __str__(self):
        return self.reference or f"ticket {self.pk}"


answer_key_validator = RegexValidator(
    r"^[a-z_][a-z0-9_]{0,39}$", _("Use lower-case letters, digits and '_', starting with a letter.")
)
step_key_validator = RegexValidator(r"^[a-z0-9_-]{1,40}$", _("Use 1 to 40 lower-case letters, digits, '-' or '_'."))

# The next-step value that finishes a flow (a step key is lower-case, so it never clashes).
FLOW_END = "END"


class Flow(models.Model):
    """
    A multi-step conversation business staff build in the admin: ordered steps that each
    ask one question, then a completion action and a final reply.

    A subscriber is in at most one flow per shortcode at a time. The session (see
    conversations/sessions.py) holds the step waiting for an answer, the answers so far
    and the invalid tries at that step; it lives `session_ttl` seconds from the last
    message. Lifecycle of a run:

        started -> step answered (valid: next step | invalid: error reply, retry)
                -> completed (action run, final reply)
                 | cancelled (cancel keyword) | gave up (retry limit)
                 | timed out (next message gets `timeout_reply`) | opted out (STOP)

    `flow_problems` (conversations/flows.py) lists what keeps a definition from running;
    the admin refuses to save one with problems. The endpoint's signing secret is the
    NAME of an environment variable (`secret_env`), never the secret.
    """

    class Action(models.TextChoices):
        REPLY = "reply", _("reply only")
        CONTACT = "contact", _("save the answers to the contact")
        ENDPOINT = "endpoint", _("POST the answers to an endpoint")
        TICKET = "ticket", _("open a support ticket")
        TASK = "task", _("queue a named task")

    shortcode = models.ForeignKey(
        "commands.Shortcode", verbose_name=_("shortcode"), on_delete=models.CASCADE, related_name="flows"
    )
    slug = models.SlugField(
        _("slug"), max_length=50, unique=True, help_text=_('What a command names: handler "flow", {"flow": "<slug>"}.')
    )
    name = models.CharField(_("name"), max_length=100)
    active = models.BooleanField(_("active"), default=True)
    session_ttl = models.PositiveIntegerField(
        _("session time-out (seconds)"),
        default=300,
        validators=[MinValueValidator(10)],
        help_text=_("How long the flow waits for the next answer."),
    )
    timeout_reply = models.TextField(
        _("time-out reply"),
        blank=True,
        help_text=_("Sent on the next message after the time-out; empty: that message is read afresh."),
    )
    cancel_keywords = models.CharField(
        _("cancel keywords"),
        max_length=200,
        default="0, MENU, CANCEL",
        blank=True,
        help_text=_("Comma-separated. Opt-out words (STOP, CANCEL, ...) still win: they end the flow and unsubscribe."),
    )
    cancel_reply = models.TextField(_("cancel reply"), blank=True, help_text=_("Empty: the shortcode's menu reply."))
    give_up_reply = models.TextField(
        _("retry limit reply"),
        default="Too many invalid answers. Please start again.",
        help_text=_("Sent when an answer is invalid once more than the step's retry limit allows."),
    )
    completion_action = models.CharField(
        _("completion action"), max_length=20, choices=Action.choices, default=Action.REPLY
    )
    completion_reply = models.TextField(
        _("final reply"),
        blank=True,
        help_text=_(
            "May use the answers ({name}); a ticket's reference is {reference}. With an endpoint, its "
            "'reply' is sent instead, and this only when it answers none."
        ),
    )
    endpoint_url = models.URLField(_("endpoint"), max_length=500, blank=True)
    secret_env = models.CharField(
        _("signing secret variable"),
        max_length=100,
        blank=True,
        help_text=_("Name of the HANDLER_SECRET_* environment variable holding the HMAC secret; never the secret."),
    )
    endpoint_timeout = models.FloatField(_("endpoint time-out (seconds)"), default=5.0)
    endpoint_retries = models.PositiveSmallIntegerField(_("endpoint retries"), default=2)
    task_name = models.CharField(
        _("task name"), max_length=200, blank=True, help_text=_("A registered Celery task, queued with the answers.")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("shortcode", "name")
        verbose_name = _("flow")
        verbose_name_plural = _("flows")
        constraints = [
            models.CheckConstraint(condition=Q(session_ttl__gte=1), name="flow_session_ttl_positive"),
            models.CheckConstraint(condition=Q(endpoint_timeout__gt=0), name="flow_endpoint_timeout_positive"),
        ]

    def __str__(self):
        return f"{self.name} ({self.slug})"

    def cancel_words(self) -> frozenset[str]:
        return frozenset(w.strip().upper() for w in self.cancel_keywords.split(",") if w.strip())


class FlowStep(models.Model):
    """
    One question of a flow. Its answer, checked by `input_kind`, is saved under
    `answer_key`; an invalid one gets `error_reply` up to `retry_limit` times. Then the
    flow goes on to `next_step` (a step's key, END, or empty for the next in order); a
    choice step may branch per option.
    """

    class InputKind(models.TextChoices):
        TEXT = "text", _("text")
        NUMBER = "number", _("number")
        CHOICE = "choice", _("choice (options below)")
        REGEX = "regex", _("matches a pattern")
        DATE = "date", _("date")
        YES_NO = "yes_no", _("yes / no")
        PHONE = "phone", _("phone number")

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(_("position"), default=0)
    key = models.CharField(_("key"), max_length=40, validators=[step_key_validator], help_text=_("Branches name it."))
    prompt = models.TextField(_("prompt"), blank=True, help_text=_("May use earlier answers: {name}."))
    prompt_template = models.CharField(
        _("prompt DLT template ID"), max_length=30, blank=True, help_text=_("Instead of the text: this template.")
    )
    template_values = models.TextField(
        _("template values"), blank=True, help_text=_("One per line, in placeholder order; may use answers: {name}.")
    )
    input_kind = models.CharField(_("input"), max_length=10, choices=InputKind.choices, default=InputKind.TEXT)
    pattern = models.CharField(_("pattern"), max_length=200, blank=True, help_text=_("For 'matches a pattern'."))
    answer_key = models.CharField(_("saved as"), max_length=40, validators=[answer_key_validator])
    error_reply = models.TextField(_("error reply"), default="Sorry, that is not a valid answer. Please try again.")
    retry_limit = models.PositiveSmallIntegerField(
        _("retry limit"), default=2, help_text=_("Invalid answers that get the error reply; one more ends the flow.")
    )
    next_step = models.CharField(
        _("next step"), max_length=40, blank=True, help_text=_("A step's key, END, or empty: the next in order.")
    )

    class Meta:
        ordering = ("flow", "position", "id")
        verbose_name = _("flow step")
        verbose_name_plural = _("flow steps")
        constraints = [
            models.UniqueConstraint(fields=["flow", "key"], name="flow_step_key_unique"),
        ]

    def __str__(self):
        return f"{self.flow.slug}:{self.key}"


class FlowStepOption(models.Model):
    """
    One answer a choice step accepts: `value` is what the subscriber sends ("1"), or the
    label itself; `label` is what is saved (empty: the value); `next_step` branches.
    Options belong to their flow and name their step by key, so a flow's steps and
    options are edited, and validated, together.
    """

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="options")
    step_key = models.CharField(_("step"), max_length=40, validators=[step_key_validator])
    position = models.PositiveIntegerField(_("position"), default=0)
    value = models.CharField(_("reply"), max_length=30)
    label = models.CharField(_("saved as"), max_length=100, blank=True)
    next_step = models.CharField(
        _("next step"), max_length=40, blank=True, help_text=_("A step's key, END, or empty: the step's own next.")
    )

    class Meta:
        ordering = ("flow", "step_key", "position", "id")
        verbose_name = _("choice option")
        verbose_name_plural = _("choice options")
        constraints = [
            models.UniqueConstraint("flow", "step_key", Upper("value"), name="flow_option_value_unique"),
        ]

    def __str__(self):
        return f"{self.step_key}: {self.value}"

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Upper
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from commands.handlers import HANDLERS

shortcode_number_validator = RegexValidator(
    r"^[0-9A-Za-z+]{3,15}$",
    _("A shortcode is 3 to 15 digits or letters (a long number may start with +)."),
)
keyword_validator = RegexValidator(r"^[0-9A-Za-z_-]{1,30}$", _("Use 1 to 30 letters, digits, '-' or '_'; no spaces."))


def default_provider() -> str:
    return settings.SMS_DEFAULT_PROVIDER


class Shortcode(models.Model):
    """
    A number subscribers text, and the gateway its replies go out through.

    Inbound SMS addressed to `number` are routed to this shortcode's Commands. Replies
    leave through `provider` (a slug from settings.SMS_PROVIDERS) with `provider_config`
    (non-secret options such as a sender ID or an outbound URL). An inactive shortcode
    stores what it receives but answers nothing.
    """

    number = models.CharField(_("number"), max_length=15, unique=True, validators=[shortcode_number_validator])
    name = models.CharField(_("name"), max_length=100)
    provider = models.CharField(_("provider"), max_length=30, default=default_provider)
    provider_config = models.JSONField(_("provider options"), default=dict, blank=True)
    country = models.CharField(
        _("country"),
        max_length=2,
        default="IN",
        help_text=_("ISO 3166 code; local numbers are read in its format."),
    )
    active = models.BooleanField(_("active"), default=True)
    menu_text = models.TextField(
        _("menu reply"),
        default="Reply with a code from the menu.",
        help_text=_("Sent for an empty message."),
    )
    unknown_text = models.TextField(
        _("unknown code reply"),
        default="Sorry, we did not understand that. Reply with a code from the menu.",
        help_text=_("Sent when no command matches."),
    )
    help_text = models.TextField(
        _("help reply"),
        default="Reply with a code from the menu. Reply STOP to opt out.",
    )
    sender_id = models.CharField(
        _("sender ID / DLT header"),
        max_length=11,
        blank=True,
        help_text=_("The sender replies carry; empty: the shortcode number. For India, the DLT header."),
    )
    dlt_bound = models.BooleanField(
        _("DLT-bound"),
        null=True,
        blank=True,
        help_text=_("Replies must match an approved DLT template. Empty: yes for country IN."),
    )
    opt_out_keywords = models.CharField(
        _("extra opt-out words"),
        max_length=200,
        blank=True,
        help_text=_("Comma-separated, besides STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT."),
    )
    opt_out_reply = models.TextField(
        _("opt-out confirmation"),
        default="You have been unsubscribed and will receive no more messages. Reply START to resubscribe.",
    )
    opt_in_reply = models.TextField(_("opt-in confirmation"), default="You are subscribed again. Reply HELP for help.")
    inbound_limit_per_minute = models.PositiveIntegerField(
        _("inbound limit per sender per minute"), default=20, help_text=_("Messages over it are stored, not answered.")
    )
    max_mps = models.PositiveIntegerField(
        _("outbound messages per second"), default=30, validators=[MinValueValidator(1)]
    )
    segment_limit = models.PositiveSmallIntegerField(
        _("reply segment limit"),
        default=4,
        validators=[MinValueValidator(1)],
        help_text=_("Longer replies are cut at a segment boundary."),
    )
    catch_all_handler = models.CharField(
        _("catch-all handler"),
        max_length=50,
        blank=True,
        help_text=_("Answers text that matches no code (free text); empty: the unknown code reply."),
    )
    catch_all_config = models.JSONField(_("catch-all options"), default=dict, blank=True)
    session_ttl = models.PositiveIntegerField(
        _("session time-out (seconds)"),
        default=300,
        validators=[MinValueValidator(10)],
        help_text=_("How long a multi-step conversation waits for the next SMS."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("number",)
        verbose_name = _("shortcode")
        verbose_name_plural = _("shortcodes")
        constraints = [
            models.CheckConstraint(condition=models.Q(session_ttl__gte=1), name="shortcode_session_ttl_positive"),
            models.CheckConstraint(condition=models.Q(max_mps__gte=1), name="shortcode_max_mps_min"),
            models.CheckConstraint(condition=models.Q(segment_limit__gte=1), name="shortcode_segment_limit_min"),
        ]

    def __str__(self):
        return f"{self.number} ({self.name})"

    def clean(self):
        # The gateway boundary knows what a provider accepts (where its key may go, which
        # options are secrets); settings name its check so this app imports no other.
        errors = import_string(settings.SHORTCODE_CONFIG_CHECK)(self.provider, self.provider_config)
        if errors:
            raise ValidationError({"provider_config": errors})

    @property
    def requires_dlt(self) -> bool:
        return self.dlt_bound if self.dlt_bound is not None else self.country.upper() == "IN"

    @property
    def sender(self) -> str:
        return self.sender_id or self.number


class Command(models.Model):
    """
    A code ("1") or keyword a shortcode answers, and the handler that answers it.

    `code` and every alias are unique within the shortcode, case-insensitively (codes
    are stored upper-case; the database enforces code uniqueness, `clean()` checks
    codes against aliases). `handler_key` names a handler in commands.handlers.HANDLERS;
    system check commands.E001 reports one that does not exist.
    """

    shortcode = models.ForeignKey(Shortcode, on_delete=models.CASCADE, related_name="commands")
    code = models.CharField(_("code"), max_length=30, validators=[keyword_validator])
    name = models.CharField(_("name"), max_length=100)
    handler_key = models.CharField(_("handler"), max_length=50)
    config = models.JSONField(_("handler options"), default=dict, blank=True)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("shortcode", "code")
        verbose_name = _("command")
        verbose_name_plural = _("commands")
        constraints = [
            # Also the index for the registry lookup (shortcode, code).
            models.UniqueConstraint("shortcode", Upper("code"), name="command_code_unique_per_shortcode"),
        ]

    def __str__(self):
        return f"{self.code} · {self.name}"

    def clean(self):
        self.code = (self.code or "").strip().upper()
        self.keywords_validate([self.code])
        registered = HANDLERS.get(self.handler_key)
        if registered is not None and registered.validate_config is not None:
            try:
                registered.validate_config(self.config)
            except ValidationError as exc:
                raise ValidationError({"config": exc.messages}) from exc

    def keywords_validate(self, keywords: list[str]) -> None:
        """Raise ValidationError if any keyword is already another command's code or alias on the shortcode."""
        if not self.shortcode_id:
            return
        words = {w.strip().upper() for w in keywords if w and w.strip()}
        if not words:
            return
        others = Command.objects.filter(shortcode_id=self.shortcode_id).exclude(pk=self.pk)
        taken_codes = set(others.filter(code__in=words).values_list("code", flat=True))
        taken_aliases = set(
            Alias.objects.filter(command__in=others, keyword__in=words).values_list("keyword", flat=True)
        )
        clashes = sorted(taken_codes | taken_aliases)
        if clashes:
            raise ValidationError(
                "Already used on this shortcode: %(words)s. A code or alias must be unique within its shortcode.",
                code="keyword_taken",
                params={"words": ", ".join(clashes)},
            )


class Alias(models.Model):
    """Another word for a Command ("BAL" for code 2); unique within the shortcode."""

    command = models.ForeignKey(Command, on_delete=models.CASCADE, related_name="aliases")
    keyword = models.CharField(_("keyword"), max_length=30, validators=[keyword_validator])

    class Meta:
        ordering = ("keyword",)
        verbose_name = _("alias")
        verbose_name_plural = _("aliases")
        constraints = [
            models.UniqueConstraint("command", Upper("keyword"), name="alias_keyword_unique_per_command"),
        ]

    def __str__(self):
        return self.keyword

    def clean(self):
        self.keyword = (self.keyword or "").strip().upper()

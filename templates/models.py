from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from templates.content import ContentError, parse_content, placeholders

# DLT identifiers are numeric; commonly 19 digits, some portals issue 12 (docs/PROVIDERS.md, India DLT).
DLT_ID_REGEX = r"^[0-9]{12,19}$"
dlt_id_validator = RegexValidator(DLT_ID_REGEX, _("A DLT ID is 12 to 19 digits, nothing else."))

NUMERIC_HEADER_REGEX = r"^[0-9]{6}$"
ALPHA_HEADER_REGEX = r"^[A-Za-z]{6}$"
# The database accepts either shape; clean() checks which one the header's category allows.
HEADER_REGEX = r"^([0-9]{6}|[A-Za-z]{6})$"


class PrincipalEntity(models.Model):
    """
    A brand registered on a DLT portal (the "PE"), identified by its PE ID.

    Owns headers and templates; every submission to an operator carries its PE ID.
    The PE ID is immutable in practice: changing it here re-labels every message sent
    afterwards. Deleting an entity is refused while it has headers or templates.
    """

    name = models.CharField(_("name"), max_length=200)
    pe_id = models.CharField(_("PE ID"), max_length=19, unique=True, validators=[dlt_id_validator])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)
        verbose_name = _("principal entity")
        verbose_name_plural = _("principal entities")
        constraints = [
            models.CheckConstraint(condition=Q(pe_id__regex=DLT_ID_REGEX), name="principal_entity_pe_id_digits"),
        ]

    def __str__(self):
        return f"{self.name} ({self.pe_id})"


class Header(models.Model):
    """
    A sender ID (DLT "header") registered by an entity for one category of traffic.

    `sender_id` is unique and compared case-sensitively, as operators do (DLT error 620):
    "ABCDEF" and "abcdef" are different headers. Transactional, service and government
    headers are 6 letters; promotional ones 6 digits or, since 2025, 6 letters. Phones show
    the header with a suffix for its category (`ABCDEF-S`). An inactive header matches
    nothing (DLT 621).

    DLT portals register a header as promotional or "others" (plus government); an
    "others" header carries transactional and service templates alike. Here both
    `transactional` and `service` stand for "others": either carries either kind of
    template (Template.HEADER_CATEGORIES); the value only names the traffic it was first
    registered or imported for.
    """

    class Category(models.TextChoices):
        TRANSACTIONAL = "transactional", _("transactional")
        SERVICE = "service", _("service")
        PROMOTIONAL = "promotional", _("promotional")
        GOVERNMENT = "government", _("government")

    SUFFIXES = {
        Category.TRANSACTIONAL: "T",
        Category.SERVICE: "S",
        Category.PROMOTIONAL: "P",
        Category.GOVERNMENT: "G",
    }

    entity = models.ForeignKey(
        PrincipalEntity, on_delete=models.PROTECT, related_name="headers", verbose_name=_("entity")
    )
    sender_id = models.CharField(
        _("header"),
        # TRAI allows up to 11 characters; the 6-character rule is enforced by validators and constraints.
        max_length=11,
        unique=True,
        validators=[RegexValidator(HEADER_REGEX, _("A header is 6 letters, or 6 digits for promotional."))],
        help_text=_("Exactly as registered; case matters."),
    )
    category = models.CharField(_("category"), max_length=13, choices=Category.choices)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("sender_id",)
        verbose_name = _("header")
        verbose_name_plural = _("headers")
        constraints = [
            models.CheckConstraint(condition=Q(sender_id__regex=HEADER_REGEX), name="header_sender_id_shape"),
            # Only promotional headers may be numeric.
            models.CheckConstraint(
                condition=Q(category="promotional") | Q(sender_id__regex=ALPHA_HEADER_REGEX),
                name="header_numeric_only_promotional",
            ),
            models.CheckConstraint(
                condition=Q(category__in=["transactional", "service", "promotional", "government"]),
                name="header_category_valid",
            ),
        ]

    def __str__(self):
        return self.display

    @property
    def suffix(self) -> str:
        return self.SUFFIXES.get(self.category, "")

    @property
    def display(self) -> str:
        """How phones show it since the 2025 amendment, e.g. `ABCDEF-S`."""
        return f"{self.sender_id}-{self.suffix}" if self.suffix else self.sender_id

    @property
    def kind(self) -> str:
        return "numeric" if self.sender_id.isdigit() else "alphabetic"

    def clean(self):
        if self.sender_id and self.sender_id.isdigit() and self.category != self.Category.PROMOTIONAL:
            raise ValidationError(
                {
                    "sender_id": _(
                        "Numeric headers are promotional only; transactional and service headers are 6 letters."
                    )
                }
            )


class Template(models.Model):
    """
    A content template approved on the DLT portal, with the headers it may be sent from.

    Lifecycle: approved (messages matching it may be sent) <-> inactive (matches nothing:
    deactivated or expired on the portal, DLT 631). Rows come from the portal's CSV export
    (dlt_import) or the admin; the DLT template ID is unique and never reused.

    Invariants: `content` parses (balanced `{#name#}` placeholders of known kinds, see
    templates.content); every header belongs to the template's entity and to a category
    that may carry it (HEADER_CATEGORIES); a consent template (`is_consent`) has no
    variables and is not matched against outgoing text (consent messages are sent by the
    DLT platform, not by us); only promotional and former service-explicit templates point
    at a consent template, and only optionally, since the consent record itself lives on
    the portal. Service-explicit is kept for old registrations and treated as promotional
    (retired by the 2025 amendment).
    """

    class Category(models.TextChoices):
        TRANSACTIONAL = "transactional", _("transactional")
        SERVICE_IMPLICIT = "service_implicit", _("service implicit")
        SERVICE_EXPLICIT = "service_explicit", _("service explicit (treated as promotional)")
        PROMOTIONAL = "promotional", _("promotional")
        GOVERNMENT = "government", _("government")

    class Status(models.TextChoices):
        APPROVED = "approved", _("approved")
        INACTIVE = "inactive", _("inactive")

    PROMOTIONAL_CATEGORIES = frozenset({Category.PROMOTIONAL, Category.SERVICE_EXPLICIT})

    # The portal's "others" header: transactional and service templates share it.
    OTHERS_HEADER_CATEGORIES = frozenset({Header.Category.TRANSACTIONAL, Header.Category.SERVICE})
    # Which header categories may carry a template of each category. Service-explicit
    # templates were registered on "others" headers before the 2025 amendment moved them
    # to promotional, so either carries them.
    HEADER_CATEGORIES = {
        Category.TRANSACTIONAL: OTHERS_HEADER_CATEGORIES,
        Category.SERVICE_IMPLICIT: OTHERS_HEADER_CATEGORIES,
        Category.SERVICE_EXPLICIT: OTHERS_HEADER_CATEGORIES | {Header.Category.PROMOTIONAL},
        Category.PROMOTIONAL: frozenset({Header.Category.PROMOTIONAL}),
        Category.GOVERNMENT: frozenset({Header.Category.GOVERNMENT}),
    }

    entity = models.ForeignKey(
        PrincipalEntity, on_delete=models.PROTECT, related_name="templates", verbose_name=_("entity")
    )
    headers = models.ManyToManyField(Header, related_name="templates", blank=True, verbose_name=_("headers"))
    dlt_template_id = models.CharField(_("DLT template ID"), max_length=19, unique=True, validators=[dlt_id_validator])
    name = models.CharField(_("name"), max_length=200, blank=True)
    category = models.CharField(_("category"), max_length=16, choices=Category.choices)
    content = models.TextField(
        _("content"),
        help_text=_(
            "Exactly as approved, with {#var#}, {#numeric#}, {#alphanumeric#}, {#url#}, {#urlott#}, "
            "{#cbn#} or {#email#} where values go. Spaces, punctuation and apostrophes must be identical."
        ),
    )
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.APPROVED)
    is_consent = models.BooleanField(
        _("consent template"),
        default=False,
        help_text=_("A consent-acquisition template: no variables; never matched against outgoing messages."),
    )
    consent_template = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="consented_templates",
        limit_choices_to={"is_consent": True},
        verbose_name=_("consent template"),
        help_text=_("Promotional only: the consent template under which recipients agreed."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("dlt_template_id",)
        verbose_name = _("template")
        verbose_name_plural = _("templates")
        constraints = [
            models.CheckConstraint(
                condition=Q(dlt_template_id__regex=DLT_ID_REGEX), name="template_dlt_template_id_digits"
            ),
            models.CheckConstraint(
                condition=Q(
                    category__in=["transactional", "service_implicit", "service_explicit", "promotional", "government"]
                ),
                name="template_category_valid",
            ),
            models.CheckConstraint(condition=Q(status__in=["approved", "inactive"]), name="template_status_valid"),
            models.CheckConstraint(condition=~Q(content=""), name="template_content_not_empty"),
            models.CheckConstraint(
                condition=Q(consent_template__isnull=True) | Q(category__in=["promotional", "service_explicit"]),
                name="template_consent_only_promotional",
            ),
            models.CheckConstraint(
                condition=Q(consent_template__isnull=True) | Q(is_consent=False),
                name="template_consent_has_no_consent",
            ),
        ]

    def __str__(self):
        return f"{self.dlt_template_id} · {self.name}" if self.name else self.dlt_template_id

    @property
    def promotional(self) -> bool:
        return self.category in self.PROMOTIONAL_CATEGORIES

    @property
    def placeholder_kinds(self) -> list[str]:
        return placeholders(parse_content(self.content))

    def clean(self):
        errors: dict[str, list] = {}
        try:
            parts = parse_content(self.content or "")
        except ContentError as exc:
            errors.setdefault("content", []).append(str(exc))
        else:
            if self.is_consent and placeholders(parts):
                errors.setdefault("content", []).append(_("A consent template has no variables."))
        if self.consent_template_id is not None:
            if self.category not in self.PROMOTIONAL_CATEGORIES:
                errors.setdefault("consent_template", []).append(
                    _("Only promotional (or former service-explicit) templates need a consent template.")
                )
            elif self.is_consent:
                errors.setdefault("consent_template", []).append(_("A consent template has no consent template."))
            elif not self.consent_template.is_consent:
                errors.setdefault("consent_template", []).append(_("Choose a template marked as a consent template."))
            elif self.entity_id is not None and self.consent_template.entity_id != self.entity_id:
                errors.setdefault("consent_template", []).append(_("The consent template belongs to another entity."))
        if errors:
            raise ValidationError(errors)

    def header_errors(self, headers) -> list[str]:
        """Why each of `headers` may not carry this template (wrong entity or category); empty when all may."""
        allowed = self.HEADER_CATEGORIES.get(self.category, frozenset())
        problems = []
        for header in headers:
            if self.entity_id is not None and header.entity_id != self.entity_id:
                problems.append(f"Header {header.sender_id} belongs to another entity.")
            elif header.category not in allowed:
                problems.append(
                    f"Header {header.sender_id} is {header.get_category_display()}; a {self.get_category_display()} "
                    f"template needs a {' or '.join(sorted(allowed))} header."
                )
        return problems

"""
The admin's send form: staff send one SMS from a shortcode to a number, as free text or as
an approved DLT template with its values.

Preview shows what the send would be before anything is stored: the encoding, the segment
count against the shortcode's limit, the DLT template the text matches (or why none does
and the nearest one) and whether the number opted out. Send refuses what the preview
shows would be refused and otherwise goes through delivery.outbound.shortcode_message_send with the
shortcode's own options (send_options_for), exactly as a reply does: suppression and DLT
are checked again there and at delivery, and the shortcode's throughput applies.
"""

import datetime as dt
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, LogEntry
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from commands.models import Shortcode
from delivery.models import Message
from delivery.outbound import shortcode_message_send
from delivery.phones import InvalidPhoneNumber, to_e164
from delivery.segments import SegmentInfo, segment_info
from delivery.statuses import Status
from delivery.suppression import suppression_get, suppression_reason
from delivery.text import clean_text
from templates.content import KIND_DESCRIPTIONS
from templates.models import Template
from templates.services import (
    TemplateRenderError,
    TemplateResolution,
    promotional_window_next_start,
    template_render,
    template_resolve,
)

# Staff who may send from the admin: the right to add messages (the Message admin itself
# adds none, so this permission means exactly this form).
SEND_PERMISSION = "delivery.add_message"
MAX_VALUES = 25  # more placeholders than any DLT template has


@dataclass(frozen=True)
class SendPreview:
    """
    What sending `text` from `shortcode` to `phone` would do, decided as message_send would.

    `refusals` lists why it would not be sent (empty: it would be queued); `resolution` is
    None for a shortcode that is not DLT-bound; `nearest` the content of the template a
    refused text came closest to; `held_until` when a promotional text waits for its window.
    """

    shortcode: Shortcode
    phone: str
    text: str
    segments: SegmentInfo
    resolution: TemplateResolution | None
    nearest: str
    opted_out: str
    held_until: dt.datetime | None
    refusals: list[str]

    @property
    def over_limit(self) -> bool:
        return self.segments.segments > self.shortcode.segment_limit


def send_preview(*, shortcode: Shortcode, phone: str, text: str, now: dt.datetime) -> SendPreview:
    """Judge a send before storing it: segments, the DLT template, the suppression list."""
    info = segment_info(text)
    refusals = []
    if info.segments > shortcode.segment_limit:
        refusals.append(
            f"The text is {info.segments} segments; shortcode {shortcode.number} sends at most "
            f"{shortcode.segment_limit}."
        )
    resolution, nearest, held_until = None, "", None
    if shortcode.requires_dlt:
        resolution = template_resolve(header=shortcode.sender, text=text)
        if not resolution.matched:
            refusals.append(f"No approved DLT template of header {shortcode.sender} matches: {resolution.why}")
            if resolution.nearest_template_id:
                nearest = (
                    Template.objects.filter(dlt_template_id=resolution.nearest_template_id)
                    .values_list("content", flat=True)
                    .first()
                    or ""
                )
        elif resolution.promotional:
            held_until = promotional_window_next_start(now=now)
    suppression = suppression_get(phone=phone, shortcode=shortcode.number)
    opted_out = suppression_reason(phone=phone, suppression=suppression) if suppression else ""
    if opted_out:
        refusals.append(opted_out)
    return SendPreview(
        shortcode=shortcode,
        phone=phone,
        text=text,
        segments=info,
        resolution=resolution,
        nearest=nearest,
        opted_out=opted_out,
        held_until=held_until,
        refusals=refusals,
    )


@transaction.atomic
def console_message_send(*, shortcode: Shortcode, phone: str, text: str, user_id: int) -> Message:
    """
    Send `text` from `shortcode` to `phone` as the shortcode's replies are sent, and record
    in the admin's history who sent it. The message may come back `refused` (the number
    opted out or the templates changed since the preview).
    """
    message = shortcode_message_send(shortcode=shortcode, phone=phone, body=text)
    LogEntry.objects.log_actions(
        user_id=user_id,
        queryset=[message],
        action_flag=ADDITION,
        change_message="Sent from the send form.",
        single_object=True,
    )
    return message


# The form ----------------------------------------------------------------------------


class ShortcodeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        dlt = f", DLT header {obj.sender}" if obj.requires_dlt else ""
        return f"{obj.number} · {obj.name} ({obj.provider}{dlt})"


def template_choices() -> list:
    """
    The approved templates of the headers active shortcodes send as, grouped by header
    (value: the DLT template ID). Other headers' templates could not be sent from here.
    """
    senders = {shortcode.sender for shortcode in Shortcode.objects.filter(active=True)}
    rows = (
        Template.objects.filter(
            status=Template.Status.APPROVED, is_consent=False, headers__active=True, headers__sender_id__in=senders
        )
        .values_list("headers__sender_id", "dlt_template_id", "name", "content")
        .order_by("headers__sender_id", "name", "dlt_template_id")
    )
    groups: dict[str, list] = {}
    for header, template_id, name, content in rows:
        label = f"{template_id} · {name or content[:50]}"
        groups.setdefault(header, []).append((template_id, label))
    return [("", _("— free text —")), *groups.items()]


class SendForm(forms.Form):
    """
    Shortcode, phone, and either free text or a template with one value per placeholder.
    The value fields follow the chosen template, so they appear once it is chosen and the
    form previewed. `cleaned_data` gains the E.164 `phone` and the final `body`.
    """

    shortcode = ShortcodeChoiceField(queryset=Shortcode.objects.filter(active=True), label=_("From shortcode"))
    phone = forms.CharField(
        label=_("To phone"),
        max_length=30,
        help_text=_("E.164 (+919876543210) or a national number of the shortcode's country."),
    )
    template = forms.ChoiceField(
        label=_("DLT template"),
        required=False,
        help_text=_("Choose one and press Preview to fill in its values; or leave it and type the text."),
    )
    text = forms.CharField(label=_("Text"), required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 60}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = template_choices()
        self.chosen_template = None
        chosen = (self.data.get("template") or "").strip() if self.is_bound else ""
        if chosen:
            self.chosen_template = Template.objects.filter(
                dlt_template_id=chosen, status=Template.Status.APPROVED
            ).first()
        if self.chosen_template is not None:
            kinds = self.chosen_template.placeholder_kinds[:MAX_VALUES]
            for position, kind in enumerate(kinds, start=1):
                self.fields[f"value_{position}"] = forms.CharField(
                    label=_("Value %(n)d") % {"n": position},
                    required=False,
                    help_text=f"{{#{kind}#}}: {KIND_DESCRIPTIONS.get(kind, '')}",
                )

    def value_fields(self):
        return [self[name] for name in self.fields if name.startswith("value_")]

    def clean(self):
        data = super().clean()
        shortcode = data.get("shortcode")
        if shortcode is None:
            return data
        if data.get("phone"):
            try:
                data["phone"] = to_e164(data["phone"], region=shortcode.country)
            except InvalidPhoneNumber as exc:
                self.add_error("phone", f"{exc}; numbers are read as {shortcode.country} numbers.")
        if data.get("template"):
            self._body_from_template(data, shortcode)
        else:
            body = clean_text(data.get("text") or "").strip()
            if not body:
                self.add_error("text", _("Type the text, or choose a template."))
            data["body"] = body
        return data

    def _body_from_template(self, data: dict, shortcode: Shortcode) -> None:
        template = self.chosen_template
        if template is None:
            self.add_error("template", _("This template is no longer approved."))
            return
        if not template.headers.filter(sender_id=shortcode.sender).exists():
            self.add_error(
                "template",
                f"Template {template.dlt_template_id} is not registered for {shortcode.number}'s sender "
                f"{shortcode.sender}.",
            )
            return
        if (data.get("text") or "").strip():
            self.add_error("text", _("Leave the text empty when sending a template: its values make the text."))
            return
        values = [data.get(field.name) or "" for field in self.value_fields()]
        if values and not all(v.strip() for v in values):
            # First sight of the template: its value fields were just added.
            self.add_error(None, _("Fill in the template's values, then preview or send."))
            return
        try:
            data["body"] = template_render(dlt_template_id=template.dlt_template_id, values=values)
        except TemplateRenderError as exc:
            self.add_error(None, " ".join(exc.messages))


# The view ----------------------------------------------------------------------------


def send_view(request):
    """GET: the empty form. POST `preview`: the form with its preview. POST `send`: send, or say why not."""
    if not request.user.has_perm(SEND_PERMISSION):
        raise PermissionDenied
    form = SendForm(request.POST or None)
    preview = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        preview = send_preview(shortcode=data["shortcode"], phone=data["phone"], text=data["body"], now=timezone.now())
        if "send" in request.POST:
            if preview.refusals:
                form.add_error(None, _("Not sent: see the preview for why."))
            else:
                return _sent(request, data)
    context = {
        **admin.site.each_context(request),
        "title": _("Send a message"),
        "form": form,
        "preview": preview,
    }
    return TemplateResponse(request, "console/send.html", context)


def _sent(request, data):
    message = console_message_send(
        shortcode=data["shortcode"], phone=data["phone"], text=data["body"], user_id=request.user.pk
    )
    link = reverse("admin:delivery_message_change", args=[message.pk])
    if message.status == Status.REFUSED:
        messages.error(
            request, format_html('<a href="{}">Message {}</a> was refused: {}', link, message.pk, message.error_message)
        )
    else:
        messages.success(
            request,
            format_html('<a href="{}">Message {}</a> to {} is {}.', link, message.pk, message.phone, message.status),
        )
    return redirect("console:send")

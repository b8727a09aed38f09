"""
The admin's simulator: pick a shortcode, type as a phone number, and see the replies as
a chat thread with the phone's session beside it.

Each message runs the real pipeline (conversations.simulation.sms_simulate, the code
path of `simulate_sms`): opt-out words, sessions and flows, handlers (an `http` command
really calls its endpoint, a `queue` command really starts its task), DLT and
suppression rules. It is stored as provider "simulator-console", so its replies go
through the console provider: no SMS leaves and nothing is billed. Simulated rows are
told apart by that provider (the inbound) and their `in_reply_to` (the replies); the
thread shows only them, never a real subscriber's messages. Being real, a simulated STOP
does put the typed number on the shortcode's suppression list.

Who may use it: staff who may change commands (`commands.change_command`: business
staff, superusers), since they configure what it exercises. Support agents read
conversations on the conversation page and need no simulator.
"""

import dataclasses
import json
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from commands.models import Shortcode
from conversations.receiving import CONSOLE_SIMULATOR_PROVIDER
from conversations.sessions import session_clear, session_get
from conversations.simulation import SimulationBusy, sms_simulate
from delivery.models import Message
from delivery.phones import InvalidPhoneNumber, to_e164
from delivery.providers.base import WebhookBadRequest
from delivery.statuses import Direction

SIMULATOR_PERMISSION = "commands.change_command"
THREAD_LIMIT = 100  # the latest messages shown; older ones stay in the message list
TEXT_MAX = 1000  # longer than any SMS a subscriber sends


class ShortcodeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.number} · {obj.name}"


class SimulatorForm(forms.Form):
    """Shortcode, phone (normalised to E.164 in the shortcode's country) and the text; `cleaned_data` as typed else."""

    shortcode = ShortcodeChoiceField(
        queryset=Shortcode.objects.filter(active=True).order_by("number"),
        to_field_name="number",
        label=_("Shortcode"),
    )
    phone = forms.CharField(
        label=_("From phone"),
        max_length=30,
        help_text=_("E.164 (+919876543210) or a national number of the shortcode's country."),
    )
    text = forms.CharField(
        label=_("Text"),
        required=False,
        max_length=TEXT_MAX,
        strip=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 40}),
        help_text=_("What the subscriber sends; empty sends an empty SMS."),
    )

    def clean(self):
        data = super().clean()
        shortcode = data.get("shortcode")
        if shortcode is not None and data.get("phone"):
            try:
                data["phone"] = to_e164(data["phone"], region=shortcode.country)
            except InvalidPhoneNumber as exc:
                self.add_error("phone", f"{exc}; numbers are read as {shortcode.country} numbers.")
        return data


def simulator_thread(*, shortcode: str, phone: str) -> list[Message]:
    """The latest simulated messages between `phone` and `shortcode`, oldest first: the inbound and their replies."""
    simulated = Q(direction=Direction.INBOUND, provider=CONSOLE_SIMULATOR_PROVIDER) | Q(
        direction=Direction.OUTBOUND, in_reply_to__provider=CONSOLE_SIMULATOR_PROVIDER
    )
    latest = Message.objects.filter(simulated, shortcode=shortcode, phone=phone).order_by("-id")[:THREAD_LIMIT]
    return list(reversed(latest))


def session_fields(*, shortcode: str, phone: str) -> list[tuple[str, str]]:
    """The phone's open session as (field, text) rows; [] when none is open."""
    session = session_get(shortcode=shortcode, phone=phone)
    if session is None:
        return []
    rows = []
    for name, value in dataclasses.asdict(session).items():
        text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
        rows.append((name.replace("_", " "), text))
    return rows


def simulator_view(request):
    """
    GET ?shortcode=&phone=: the thread and session of that pair. POST: simulate the text
    and come back to the thread (a reload never sends again); POST `clear`: end the
    phone's session.
    """
    if not request.user.has_perm(SIMULATOR_PERMISSION):
        raise PermissionDenied
    if request.method == "POST":
        form = SimulatorForm(request.POST)
        if form.is_valid():
            done = _simulate(request, form)
            if done is not None:
                return done
    else:
        form = SimulatorForm(initial={k: request.GET[k] for k in ("shortcode", "phone") if request.GET.get(k)})
    shortcode, phone = _pair(form, request)
    context = {
        **admin.site.each_context(request),
        "title": _("Simulator"),
        "form": form,
        "shortcode": shortcode,
        "phone": phone,
        "thread": simulator_thread(shortcode=shortcode.number, phone=phone) if shortcode and phone else [],
        "session": session_fields(shortcode=shortcode.number, phone=phone) if shortcode and phone else [],
        "can_view_messages": request.user.has_perm("delivery.view_message"),
    }
    return TemplateResponse(request, "console/simulator.html", context)


def _simulate(request, form: SimulatorForm):
    """Run the SMS (or clear the session) and redirect to its thread; None, with the form's error, if it fails."""
    data = form.cleaned_data
    shortcode, phone = data["shortcode"], data["phone"]
    if "clear" in request.POST:
        session_clear(shortcode=shortcode.number, phone=phone)
    else:
        try:
            sms_simulate(
                phone=phone,
                shortcode=shortcode.number,
                text=data["text"],
                provider=CONSOLE_SIMULATOR_PROVIDER,
                raw={"simulator": "admin", "user": request.user.get_username()},
            )
        except (InvalidPhoneNumber, WebhookBadRequest, SimulationBusy) as exc:
            form.add_error(None, str(exc))
            return None
    return redirect(f"{reverse('console:simulator')}?{urlencode({'shortcode': shortcode.number, 'phone': phone})}")


def _pair(form: SimulatorForm, request) -> tuple[Shortcode | None, str]:
    """The shortcode and E.164 phone whose thread to show: the posted ones, else the query's."""
    if form.is_bound:
        data = getattr(form, "cleaned_data", {})
        if data.get("shortcode") is not None and data.get("phone") and "phone" not in form.errors:
            return data["shortcode"], data["phone"]
        return None, ""
    shortcode = Shortcode.objects.filter(active=True, number=request.GET.get("shortcode", "")).first()
    if shortcode is None or not request.GET.get("phone"):
        return shortcode, ""
    try:
        return shortcode, to_e164(request.GET["phone"], region=shortcode.country)
    except InvalidPhoneNumber:
        return shortcode, ""

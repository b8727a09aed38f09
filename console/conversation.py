"""
One conversation per phone: everything that passed between a number and our shortcodes,
as a chat thread.

Inbound on one side, outbound on the other with its status, each delivery report and
each provider call (expandable), refusals and failures with their reason, opt-out and
opt-in events, rate-limited inbound, and the phone's open sessions. The page finds a
phone by search (any format), or by the message or contact a link names (links carry
ids, not numbers). It polls `updates/` for what changed since its last look and puts
each changed entry in place, so it stays current without a reload.

Read with `delivery.view_message`; numbers (the heading, payloads, provider calls) are
masked for users without `delivery.view_full_numbers` (delivery/admin_masking.py).
"""

import contextlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from commands.models import Shortcode
from conversations.models import Contact
from conversations.optout import HELP_WORDS, OPT_IN_WORDS, OPT_OUT_WORDS
from conversations.sessions import session_get
from delivery.admin_masking import numbers_visible, phone_shown, text_shown
from delivery.models import ChannelLog, DeliveryReport, Message, Suppression
from delivery.phones import InvalidPhoneNumber, to_e164
from delivery.statuses import Direction, Status

VIEW_PERMISSION = "delivery.view_message"
# The page shows the newest messages of a phone; older ones are in the message list.
MESSAGE_LIMIT = 200
# Each poll looks this far behind its cursor: a row committed late, in a transaction that
# began before the last poll, still shows up (entries are replaced by key, so twice is harmless).
UPDATE_OVERLAP = timedelta(seconds=10)
POLL_SECONDS = 3


@dataclass(frozen=True)
class Report:
    at: datetime
    provider_status: str
    status: str
    error_code: str
    error_message: str
    applied: bool


@dataclass(frozen=True)
class ProviderCall:
    at: datetime
    kind: str
    provider: str
    status_code: int | None
    elapsed_ms: int
    url: str
    request: str
    response: str
    error: str


@dataclass(frozen=True)
class Entry:
    """
    One item of the thread. `key` is stable across polls (the element's id); `side` is
    "in", "out" or "event"; `labels` name events the message was (opted out, rate
    limited); `reason` says why it failed, was refused or was not answered.
    """

    key: str
    at: datetime
    side: str
    shortcode: str
    text: str = ""
    status: str = ""
    reason: str = ""
    labels: tuple[str, ...] = ()
    message_id: int | None = None
    provider: str = ""
    reports: tuple[Report, ...] = ()
    calls: tuple[ProviderCall, ...] = ()


@dataclass(frozen=True)
class OpenSession:
    shortcode: str
    code: str
    step: str
    state: str
    flow_id: int | None = None


@dataclass(frozen=True)
class Thread:
    phone: str
    entries: list[Entry] = field(default_factory=list)
    sessions: list[OpenSession] = field(default_factory=list)
    opted_out_of: list[str] = field(default_factory=list)


def conversation_timeline(phone: str, *, since: datetime | None = None) -> list[Entry]:
    """
    The thread of `phone` (E.164), oldest first: its newest MESSAGE_LIMIT messages, or with
    `since` only the messages that changed from then on (new, moved status, a new report
    or provider call), plus opt-out events not tied to one of those messages. A constant
    number of queries, whatever the thread's length.
    """
    messages = Message.objects.filter(phone=phone).defer("raw_payload", "provider_options")
    if since is None:
        messages = list(messages.order_by("-created_at", "-id")[:MESSAGE_LIMIT])[::-1]
    else:
        changed = (
            Q(updated_at__gte=since)
            | Q(id__in=DeliveryReport.objects.filter(message__phone=phone, received_at__gte=since).values("message_id"))
            | Q(id__in=ChannelLog.objects.filter(message__phone=phone, created_at__gte=since).values("message_id"))
        )
        messages = list(messages.filter(changed).order_by("created_at", "id"))
    ids = [message.id for message in messages]
    reports, calls = _reports_by_message(ids), _calls_by_message(ids)
    extra_opt_out_words = _extra_opt_out_words({message.shortcode for message in messages})
    entries = [
        _message_entry(message, reports.get(message.id, ()), calls.get(message.id, ()), extra_opt_out_words)
        for message in messages
    ]
    suppressions = Suppression.objects.filter(phone=phone).exclude(message_id__in=ids)
    if since is not None:
        suppressions = suppressions.filter(created_at__gte=since)
    entries += [_suppression_entry(suppression) for suppression in suppressions]
    return sorted(entries, key=lambda entry: (entry.at, entry.key))


def conversation_get(phone: str, *, since: datetime | None = None) -> Thread:
    """The timeline, the phone's open sessions (one per shortcode it wrote to) and what it opted out of now."""
    entries = conversation_timeline(phone, since=since)
    shortcodes = sorted(
        set(Message.objects.filter(phone=phone).order_by().values_list("shortcode", flat=True).distinct()[:20])
    )
    sessions = []
    for number in shortcodes:
        session = session_get(shortcode=number, phone=phone)
        if session is not None:
            state = json.dumps(session.state, ensure_ascii=False, sort_keys=True) if session.state else ""
            sessions.append(OpenSession(number, session.code, session.step, state, session.flow_id))
    opted_out_of = [s.shortcode or _("all shortcodes") for s in Suppression.objects.filter(phone=phone)]
    return Thread(phone=phone, entries=entries, sessions=sessions, opted_out_of=opted_out_of)


def _reports_by_message(ids: list[int]) -> dict[int, list[Report]]:
    found: dict[int, list[Report]] = {}
    rows = DeliveryReport.objects.filter(message_id__in=ids).defer("raw_payload").order_by("received_at", "id")
    for report in rows:
        found.setdefault(report.message_id, []).append(
            Report(
                report.received_at,
                report.provider_status,
                report.status,
                report.error_code,
                report.error_message,
                report.applied,
            )
        )
    return found


def _calls_by_message(ids: list[int]) -> dict[int, list[ProviderCall]]:
    found: dict[int, list[ProviderCall]] = {}
    for log in ChannelLog.objects.filter(message_id__in=ids).order_by("created_at", "id"):
        found.setdefault(log.message_id, []).append(
            ProviderCall(
                log.created_at,
                log.get_kind_display(),
                log.provider,
                log.status_code,
                log.elapsed_ms,
                log.url,
                log.request,
                log.response,
                log.error,
            )
        )
    return found


def _extra_opt_out_words(shortcodes: set[str]) -> dict[str, set[str]]:
    rows = Shortcode.objects.filter(number__in=shortcodes).values_list("number", "opt_out_keywords")
    return {number: {w.strip().upper() for w in words.split(",") if w.strip()} for number, words in rows}


def _message_entry(message, reports, calls, extra_opt_out_words) -> Entry:
    inbound = message.direction == Direction.INBOUND
    labels = []
    if inbound:
        # The words conversations.optout acts on: a whole message, any case.
        word = " ".join(message.body.split()).upper()
        if word in OPT_OUT_WORDS or word in extra_opt_out_words.get(message.shortcode, ()):
            labels.append(_("opted out (%(word)s)") % {"word": word})
        elif word in OPT_IN_WORDS:
            labels.append(_("opted in (%(word)s)") % {"word": word})
        elif word in HELP_WORDS:
            labels.append(_("asked for help"))
        if message.status == Status.RATE_LIMITED:
            labels.append(_("rate limited: not answered"))
    reason = ""
    if message.error_code or message.error_message:
        reason = ": ".join(part for part in (message.error_code, message.error_message) if part)
    return Entry(
        key=f"message-{message.id}",
        at=message.created_at,
        side="in" if inbound else "out",
        shortcode=message.shortcode,
        text=message.body,
        status=message.status,
        reason=reason,
        labels=tuple(labels),
        message_id=message.id,
        provider=message.provider,
        reports=tuple(reports),
        calls=tuple(calls),
    )


def _suppression_entry(suppression) -> Entry:
    scope = suppression.shortcode or _("all shortcodes")
    return Entry(
        key=f"suppression-{suppression.id}",
        at=suppression.created_at,
        side="event",
        shortcode=suppression.shortcode,
        text=_("Opted out of %(scope)s (%(how)s%(word)s).")
        % {
            "scope": scope,
            "how": suppression.source,
            "word": f", {suppression.keyword}" if suppression.keyword else "",
        },
        labels=(_("opted out"),),
    )


def thread_shown(thread: Thread, *, visible: bool) -> Thread:
    """
    `thread` as a user sees it: unless `visible`, numbers masked in reasons, reports,
    provider calls and session answers (the thread's own number in every form it is
    written in). Message texts are shown as sent.
    """
    if visible:
        return thread

    def mask(text: str) -> str:
        return text_shown(text, visible=False, phones=[thread.phone])

    def entry_masked(entry: Entry) -> Entry:
        return replace(
            entry,
            reason=mask(entry.reason),
            reports=tuple(replace(r, error_message=mask(r.error_message)) for r in entry.reports),
            calls=tuple(
                replace(c, url=mask(c.url), request=mask(c.request), response=mask(c.response), error=mask(c.error))
                for c in entry.calls
            ),
        )

    return replace(
        thread,
        phone=phone_shown(thread.phone, visible=False),
        entries=[entry_masked(entry) for entry in thread.entries],
        sessions=[replace(session, state=mask(session.state)) for session in thread.sessions],
    )


# Views ------------------------------------------------------------------------------------


class PhoneNotFound(ValueError):
    pass


def conversation_phone(request) -> str | None:
    """
    The phone a request is about: `message=<id>` or `contact=<id>` (what links send), or
    `phone=` typed in any format; None when none is given. PhoneNotFound for a number
    that is not one; 404 for an unknown message or contact.
    """
    params = request.GET
    if params.get("message"):
        with contextlib.suppress(ValueError):
            return get_object_or_404(Message.objects.only("phone"), pk=int(params["message"])).phone
        raise Http404
    if params.get("contact"):
        with contextlib.suppress(ValueError):
            return get_object_or_404(Contact.objects.only("phone"), pk=int(params["contact"])).phone
        raise Http404
    typed = params.get("phone", "").strip()
    if not typed:
        return None
    try:
        return to_e164(typed, region=settings.SMS_DEFAULT_REGION)
    except InvalidPhoneNumber as error:
        raise PhoneNotFound(typed) from error


def _permission_check(request) -> None:
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied


def conversation_view(request):
    """GET: the search box, and with a phone (or a message or contact) its thread."""
    _permission_check(request)
    visible = numbers_visible(request.user)
    context = {
        **admin.site.each_context(request),
        "title": _("Conversation"),
        "searched": request.GET.get("phone", ""),
        "poll_seconds": POLL_SECONDS,
    }
    try:
        phone = conversation_phone(request)
    except PhoneNotFound:
        context["error"] = _("Not a phone number: %(typed)s") % {"typed": request.GET.get("phone", "")[:30]}
        return TemplateResponse(request, "console/conversation.html", context, status=400)
    if phone is not None:
        now = timezone.now()
        thread = thread_shown(conversation_get(phone), visible=visible)
        context.update(
            thread=thread,
            title=_("Conversation with %(phone)s") % {"phone": thread.phone},
            updates_query=_identifying_query(request),
            cursor=(now - UPDATE_OVERLAP).isoformat(),
            # The message list is searched by the whole number: offered to those who may see it.
            message_list_query=urlencode({"q": phone}) if visible else "",
        )
    return TemplateResponse(request, "console/conversation.html", context)


def conversation_updates_view(request):
    """GET `after=<cursor>` and what names the phone: the entries changed since, each as HTML, and the next cursor."""
    _permission_check(request)
    after = parse_datetime(request.GET.get("after", ""))
    try:
        phone = conversation_phone(request)
    except PhoneNotFound:
        phone = None
    if phone is None or after is None:
        return JsonResponse({"error": "Give a phone (or message or contact) and after=<ISO time>."}, status=400)
    if timezone.is_naive(after):
        after = timezone.make_aware(after, UTC)
    now = timezone.now()
    thread = thread_shown(conversation_get(phone, since=after), visible=numbers_visible(request.user))
    return JsonResponse(
        {
            "entries": [
                {
                    "key": entry.key,
                    "html": render_to_string("console/conversation_entry.html", {"entry": entry}, request),
                }
                for entry in thread.entries
            ],
            "state": render_to_string("console/conversation_state.html", {"thread": thread}, request),
            "cursor": (now - UPDATE_OVERLAP).isoformat(),
        }
    )


def _identifying_query(request) -> str:
    """The part of the page's query string that names the phone, for its polls (a typed phone stays typed)."""
    for name in ("message", "contact", "phone"):
        if request.GET.get(name):
            return urlencode({name: request.GET[name]})
    return ""

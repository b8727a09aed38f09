"""
Phone numbers in the admin: shown whole only to users with `delivery.view_full_numbers`
(superusers have every permission), otherwise masked but their last four digits
(`+91******3210`, delivery.redaction.phones_mask). Fail closed: whatever cannot tell who
looks shows the masked form.

Masking is display only: stored values never change, so exact search by a full number
still finds its rows, and an edit form never saves a masked number. Free text that may
carry numbers (raw payloads, channel-log bodies, URLs) is masked the same way.

`PhoneMaskingAdminMixin` does it for a ModelAdmin whose model has a `phone` field (the
tickets admin and any other showing numbers use it too); `PageViewerMixin` alone tells an
admin's display methods whether the page may show numbers whole. Links to the console's
conversation page name a message or a contact by id (`conversation_url`), so no number
appears in a link either.
"""

import copy
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from delivery.redaction import phones_mask

FULL_NUMBERS_PERMISSION = "delivery.view_full_numbers"
# A number written into a form-encoded body or a query string: "%2B919876543210".
ENCODED_PHONE = re.compile(r"(?i)(%2B\d{2})(\d{2,9})(\d{4})(?!\d)")


def numbers_visible(user) -> bool:
    """True when `user` may see phone numbers whole."""
    return bool(user is not None and user.is_active and user.has_perm(FULL_NUMBERS_PERMISSION))


def phone_shown(phone: str, *, visible: bool) -> str:
    """`phone` as a user sees it: whole when `visible`, else its last four digits only."""
    if visible or not phone:
        return phone or ""
    masked = phones_mask(phone)
    # A value that is no number phones_mask knows (too short, with spaces) keeps its last four only.
    return masked if masked != phone else "*" * max(len(phone) - 4, 0) + phone[-4:]


def text_shown(text: str, *, visible: bool, phones: Iterable[str] = ()) -> str:
    """
    Free text (a payload, a log body, a URL) with every phone number masked unless
    `visible`: numbers phones_mask recognises, URL-encoded ones, and the given `phones`
    (the message's own) in every form they may be written in.
    """
    if visible or not text:
        return text or ""
    for phone in phones:
        digits = phone.lstrip("+")
        if len(digits) < 8:
            continue
        international = phone_shown("+" + digits, visible=False)  # +91******3210
        # Longest form first: each shorter one is inside it.
        for form, masked in (
            (quote("+" + digits, safe=""), "%2B" + international[1:]),
            ("+" + digits, international),
            (digits, "*" * (len(digits) - 4) + digits[-4:]),
        ):
            text = text.replace(form, masked)
    text = ENCODED_PHONE.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)
    return phones_mask(text)


def payload_shown(value: Any, *, visible: bool, phones: Iterable[str] = ()) -> str:
    """A stored JSON value as indented text, numbers masked unless `visible`."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) if value not in (None, "") else ""
    return text_shown(text, visible=visible, phones=phones)


def conversation_url(**query: int) -> str:
    """The console's conversation page for `message=<id>` or `contact=<id>`: by id, so the link shows no number."""
    return f"{reverse('console:conversation')}?{urlencode(query)}"


def conversation_link(**query: int):
    return format_html('<a href="{}">{}</a>', conversation_url(**query), _("conversation"))


def phone_masked_copy(obj):
    """A copy of `obj` with its `phone` masked, for titles, breadcrumbs and labels (str(obj)); never saved."""
    shown = copy.copy(obj)
    shown.phone = phone_shown(obj.phone, visible=False)
    return shown


class PageViewerMixin:
    """
    Display methods of a change page get the object, not the request: `get_object` marks
    the object with whether its viewer may see numbers whole, and `obj_numbers_visible`
    reads it (False when the mark is missing).
    """

    _VISIBLE = "_numbers_visible"

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            setattr(obj, self._VISIBLE, numbers_visible(request.user))
        return obj

    def obj_numbers_visible(self, obj) -> bool:
        return bool(getattr(obj, self._VISIBLE, False))


class PhoneMaskingAdminMixin(PageViewerMixin):
    """
    Masks the model's `phone` field for users without the full-numbers permission: in the
    list's column, on the change and history pages (the field, title, breadcrumbs, so
    `str(obj)` there) and read-only for them.

    The list column is a function bound to the request; the change page's field reads the
    PageViewerMixin mark.
    """

    # List page -------------------------------------------------------------------------

    def get_list_display(self, request):
        visible = numbers_visible(request.user)
        return [self._phone_column(visible) if name == "phone" else name for name in super().get_list_display(request)]

    def _phone_column(self, visible: bool):
        @admin.display(description=self.model._meta.get_field("phone").verbose_name, ordering="phone")
        def phone(obj):
            return self.phone_cell(obj, visible=visible)

        return phone

    def phone_cell(self, obj, *, visible: bool):
        """The list cell of the phone; a subclass may wrap it in a link."""
        return phone_shown(obj.phone, visible=visible)

    def action_checkbox(self, obj):
        # Its label is str(obj), which carries the number; it cannot tell who looks, so it masks.
        return super().action_checkbox(phone_masked_copy(obj))

    # Change and history pages -------------------------------------------------------------

    @admin.display(description=_("phone"))
    def phone_masked(self, obj):
        return phone_shown(obj.phone, visible=self.obj_numbers_visible(obj))

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or numbers_visible(request.user):
            return fieldsets
        return [
            (title, {**options, "fields": [_phone_swapped(f) for f in options["fields"]]})
            for title, options in fieldsets
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is None or numbers_visible(request.user):
            return readonly
        return [_phone_swapped(f) for f in readonly if f != "phone_masked"] + ["phone_masked"]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not numbers_visible(request.user):
            shown = phone_masked_copy(obj)
            context["original"] = shown
            context["subtitle"] = str(shown)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and not numbers_visible(request.user):
            shown = phone_masked_copy(obj)
            extra_context = {**(extra_context or {}), "title": _("Change history: %s") % shown, "object": shown}
        return super().history_view(request, object_id, extra_context=extra_context)


def _phone_swapped(field):
    if isinstance(field, (list, tuple)):
        return type(field)(_phone_swapped(f) for f in field)
    return "phone_masked" if field == "phone" else field

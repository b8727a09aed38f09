"""
Sending one message through the API: the same rules as a reply, refusals as API errors.

A request is checked in this order, each failure a refusal with its code:

    shortcode_not_allowed (403)   not one of the client's active shortcodes
    invalid_number (400)          `to` is not a valid number (national numbers are read in
                                  the shortcode's country)
    callback_url_not_allowed (400), callback_secret_unset (422)
    template_not_found, template_ambiguous, template_values (422)
    too_long (422)                over the shortcode's segment limit: refused, never cut
    suppressed (422)              the number opted out of the shortcode
    dlt_no_template (422)         a DLT-bound shortcode's text matches no approved template

The last two are decided by delivery.outbound.message_send exactly as for replies: the
message is stored `refused` (its id is in the answer) and never sent. Throughput (the
shortcode's messages per second) and the promotional window apply at delivery, as for
replies.
"""

from dataclasses import dataclass

from django.db import transaction
from rest_framework import status

from api.callbacks import callback_url_refusal, client_callback_secret
from api.errors import ApiRefusal
from api.models import ApiClient, ClientMessage
from api.permissions import client_shortcode_get
from delivery.models import Message
from delivery.outbound import shortcode_message_send
from delivery.phones import InvalidPhoneNumber, to_e164
from delivery.segments import segment_info
from delivery.statuses import Status
from delivery.text import clean_text
from templates.services import TemplateRenderError, template_lookup, template_render, template_resolve

# message_send's refusal codes, as the API names them.
REFUSAL_CODES = {"opted_out": "suppressed", "dlt_no_template": "dlt_no_template"}


@dataclass(frozen=True)
class SendRequest:
    """One message to send, as the API received it (validated for types, not yet for meaning)."""

    to: str
    shortcode: str
    text: str = ""
    template: str = ""
    variables: list | dict | None = None
    callback_url: str = ""
    reference: str = ""


def api_message_send(*, client: ApiClient, request: SendRequest) -> Message:
    """
    Store `request` as an outbound message of `client` and queue its delivery; returns the
    message (`queued`). Raises ApiRefusal (see the module's table); a refusal after the
    message was stored (suppressed, dlt_no_template) carries its `message_id`.
    """
    shortcode = client_shortcode_get(client, request.shortcode)
    phone = phone_normalise(request.to, country=shortcode.country)
    callback_url = callback_url_check(client, request.callback_url)
    text = clean_text(_text_of(request, header=shortcode.sender))
    if not text.strip():
        raise ApiRefusal("empty_text", "The text is empty.", status_code=status.HTTP_400_BAD_REQUEST)
    info = segment_info(text)
    if info.segments > shortcode.segment_limit:
        raise ApiRefusal(
            "too_long",
            f"The text is {info.segments} segments ({info.encoding}); shortcode {shortcode.number} "
            f"sends at most {shortcode.segment_limit}.",
            segments=info.segments,
            segment_limit=shortcode.segment_limit,
            encoding=info.encoding,
        )
    with transaction.atomic():
        message = shortcode_message_send(
            shortcode=shortcode, phone=phone, body=text, reference=request.reference, callback_url=callback_url
        )
        ClientMessage.objects.create(message=message, client=client)
    if message.status == Status.REFUSED:
        raise _refusal_of(message, header=shortcode.sender)
    return message


def phone_normalise(raw: str, *, country: str) -> str:
    """`raw` in E.164, or ApiRefusal `invalid_number` (400)."""
    try:
        return to_e164(raw, region=country)
    except InvalidPhoneNumber as exc:
        raise ApiRefusal(
            "invalid_number",
            f"{exc}: give E.164 (+919876543210) or a national number of {country}.",
            status_code=status.HTTP_400_BAD_REQUEST,
        ) from None


def callback_url_check(client: ApiClient, url: str) -> str:
    """`url` if status callbacks may go there for `client` ("" stays ""); else an ApiRefusal."""
    if not url:
        return ""
    refusal = callback_url_refusal(url)
    if refusal:
        raise ApiRefusal(
            "callback_url_not_allowed",
            f"Callbacks cannot go to this URL: {refusal}.",
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    if not client_callback_secret(client):
        # Fail closed: an unsigned callback could be forged by anyone who knows the URL.
        raise ApiRefusal(
            "callback_secret_unset",
            "This client has no callback secret configured, so no callback can be signed; ask for one to be set.",
        )
    return url


def _text_of(request: SendRequest, *, header: str) -> str:
    if not request.template:
        return request.text
    try:
        template = template_lookup(header=header, reference=request.template)
        return template_render(dlt_template_id=template.dlt_template_id, values=request.variables or [])
    except TemplateRenderError as exc:
        code = {"not_found": "template_not_found", "ambiguous": "template_ambiguous"}.get(exc.code, "template_values")
        raise ApiRefusal(code, " ".join(exc.messages)) from None


def _refusal_of(message: Message, *, header: str) -> ApiRefusal:
    code = REFUSAL_CODES.get(message.error_code, message.error_code or "refused")
    extra: dict = {"message_id": message.id}
    if code == "dlt_no_template":
        resolution = template_resolve(header=header, text=message.body)
        extra.update(nearest_template_id=resolution.nearest_template_id, departs_at=resolution.departs_at)
    return ApiRefusal(code, message.error_message or "The message was refused.", **extra)

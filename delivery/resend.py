"""
Sending a failed outbound message again, on a person's word (the admin's "Send again").

The failed row stays as it is (`failed` is final): the text goes out as a new message
through message_send, the path every reply takes, judged again by the rules it was first
judged by (suppression, DLT), so a number that opted out since gets nothing. Who asked
is recorded in the admin's history (LogEntry) of both rows.
"""

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from delivery.models import Message
from delivery.outbound import REFUSAL_CODES, message_send
from delivery.send_options import SendOptions
from delivery.statuses import Direction, Status

# Final failures a person may try again; `refused` never is (see message_resend).
RESENDABLE_STATUSES = (Status.FAILED, Status.UNDELIVERED, Status.REJECTED)


class ResendRefused(ValueError):
    """The message may not be sent again; the text says why, for the person who asked."""


def message_resend(*, message_id: int, user) -> Message:
    """
    Send the text of a failed outbound message again as a new message; returns the new one.

    Refused: a `refused` message and a failed one whose error code is a refusal (opted
    out, no DLT template), which are never sent; an inbound message; one that has not
    failed. The new message answers the same inbound, keeps the caller's reference and
    callback, and is stored even when its own send is refused now. Both messages' admin
    history names `user` and the other message.
    """
    with transaction.atomic():
        original = Message.objects.select_for_update().get(id=message_id)
        _resendable_check(original)
        resent = message_send(
            shortcode=original.shortcode,
            phone=original.phone,
            body=original.body,
            provider=original.provider,
            options=SendOptions.from_json(original.provider_options),
            in_reply_to=original.in_reply_to,
            reference=original.reference,
            callback_url=original.callback_url,
        )
        message_type = ContentType.objects.get_for_model(Message)
        for message, flag, text in (
            (original, CHANGE, f"Sent again as message #{resent.id}."),
            (resent, ADDITION, f"Sending again message #{original.id}."),
        ):
            LogEntry.objects.create(
                user_id=user.pk,
                content_type=message_type,
                object_id=str(message.id),
                # The repr is shown in every admin's recent actions: no phone number in it.
                object_repr=f"message #{message.id}",
                action_flag=flag,
                change_message=text,
            )
    return resent


def _resendable_check(message: Message) -> None:
    if message.direction != Direction.OUTBOUND:
        raise ResendRefused(f"Message #{message.id} is inbound: only outbound messages are sent again.")
    if message.status == Status.REFUSED or message.error_code in REFUSAL_CODES:
        raise ResendRefused(
            f"Message #{message.id} was refused ({message.error_code or message.status}): "
            "a refused message is never sent."
        )
    if message.status not in RESENDABLE_STATUSES:
        raise ResendRefused(f"Message #{message.id} is {message.status}: only failed messages are sent again.")


def message_resends(*, message_id: int) -> list[LogEntry]:
    """The admin history entries of `message_id` that record it being sent again or being a re-send, oldest first."""
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Message),
            object_id=str(message_id),
            change_message__regex=r"^(Sent again as|Sending again) message #",
        )
        .select_related("user")
        .order_by("action_time")
    )

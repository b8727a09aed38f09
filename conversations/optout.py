"""Opt-out, opt-in and help words: the answers carriers require before any conversation."""

from commands.models import Shortcode
from conversations.sessions import session_clear
from delivery.models import Message
from delivery.suppression import suppression_add, suppression_remove

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})


OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})


HELP_WORDS = frozenset({"HELP", "INFO"})


def opt_keyword_handle(*, shortcode: Shortcode, inbound: Message) -> tuple[str, bool] | None:
    """
    STOP-type words put the number on the suppression list (one confirmation is still
    sent); START-type words take it off; HELP and INFO answer the help text, even to a
    number that opted out (DLT rules still apply). Only a whole message counts,
    case-insensitively ("stop please" is not an opt-out), as carriers and aggregators
    do. Returns (reply, ignore_suppression) or None.
    """
    word = " ".join(inbound.body.split()).upper()
    extra = {w.strip().upper() for w in shortcode.opt_out_keywords.split(",") if w.strip()}
    if word in OPT_OUT_WORDS or word in extra:
        suppression_add(
            phone=inbound.phone, shortcode="" if word == "STOPALL" else shortcode.number, keyword=word, message=inbound
        )
        session_clear(shortcode=shortcode.number, phone=inbound.phone)
        return shortcode.opt_out_reply, True
    if word in OPT_IN_WORDS:
        suppression_remove(phone=inbound.phone, shortcode=shortcode.number)
        return shortcode.opt_in_reply, False
    if word in HELP_WORDS:
        # Carriers require a HELP answer at all times, even to a number that opted out.
        return shortcode.help_text, True
    return None

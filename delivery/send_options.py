"""How one outbound message is to be sent, as decided when it was stored."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Keys of the stored JSON that are ours, never a shortcode's provider option.
SENDER = "sender"
MAX_MPS = "max_mps"
SEND_RULES = "send_rules"
RESERVED_KEYS = frozenset({SENDER, MAX_MPS, SEND_RULES})


@dataclass(frozen=True)
class SendOptions:
    """
    The options of one outbound message: the shortcode's provider options, its sender and
    throughput, and the rules the send was judged by.

    Stored on `Message.provider_options` (to_json) when the message is stored and read back
    (from_json) when it is delivered; nothing else reads or writes that column. The rules are
    ours: `dlt_header` (the DLT header the text must match a template of, None when the
    shortcode is not DLT-bound) and `ignore_suppression` (the opt-out confirmation and HELP
    answers go even to a suppressed number), and `bulk` (one message of a batch: its
    delivery waits on the bulk queue and takes the shortcode's throughput only above the
    share kept for replies, settings.BULK_REPLY_RESERVE). A shortcode's editable provider
    options can never carry them: reserved keys in `provider_config` are dropped.
    """

    provider_config: Mapping[str, Any] = field(default_factory=dict)
    sender: str = ""  # "": the shortcode number
    max_mps: float | None = None  # None: no throughput limit of our own
    dlt_header: str | None = None
    ignore_suppression: bool = False
    bulk: bool = False

    def __post_init__(self):
        config = {key: value for key, value in (self.provider_config or {}).items() if key not in RESERVED_KEYS}
        object.__setattr__(self, "provider_config", config)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.provider_config)
        if self.sender:
            data[SENDER] = self.sender
        if self.max_mps:
            data[MAX_MPS] = self.max_mps
        data[SEND_RULES] = {"dlt_header": self.dlt_header, "ignore_suppression": self.ignore_suppression}
        if self.bulk:
            data[SEND_RULES]["bulk"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "SendOptions":
        data = dict(data or {})
        rules = data.get(SEND_RULES) or {}
        return cls(
            provider_config=data,
            sender=str(data.get(SENDER) or ""),
            max_mps=data.get(MAX_MPS) or None,
            dlt_header=rules.get("dlt_header") or None,
            ignore_suppression=bool(rules.get("ignore_suppression")),
            bulk=bool(rules.get("bulk")),
        )

    def provider_options(self) -> dict[str, Any]:
        """What the provider receives as OutboundSMS.options: the shortcode's options, sender and throughput."""
        data = self.to_json()
        del data[SEND_RULES]
        return data


def send_options_for(shortcode: Any, *, ignore_suppression: bool = False) -> SendOptions:
    """
    The options every send from `shortcode` (a commands.Shortcode, read by attribute:
    delivery imports no commands model) is judged by: its provider options, sender and
    throughput, and its DLT header when it is DLT-bound. Replies, the admin's send form and
    the send API all build them here, so one rule holds for each.
    """
    return SendOptions(
        provider_config=shortcode.provider_config,
        sender=shortcode.sender,
        max_mps=shortcode.max_mps,
        dlt_header=shortcode.sender if shortcode.requires_dlt else None,
        ignore_suppression=ignore_suppression,
    )

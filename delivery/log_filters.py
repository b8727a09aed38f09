"""
Secrets and phone numbers out of every log line.

`RedactingFilter` sits on the root handler (settings.LOGGING) and on runserver's access
log. It renders each record's message with its arguments, then masks every declared
secret (delivery.redaction), the values of token-like query parameters (`?token=`),
and, unless the root logger is at DEBUG, phone numbers down to their last four digits.
Exception text is rendered and masked the same way, since an error's message may quote
a URL with its credentials. An event's fields (delivery.events) are cleaned the same way,
into a new dict: the listeners share the original.
"""

import logging

from delivery.redaction import phones_mask, redact, redact_query, secret_values

# Event fields that are our own identifiers, never a phone or a secret.
UNMASKED_FIELDS = frozenset({"correlation_id"})


class RedactingFilter(logging.Filter):
    def __init__(self, name: str = "", mask_phones: bool | None = None):
        """`mask_phones`: None follows the root logger's level (masked unless DEBUG)."""
        super().__init__(name)
        self.mask_phones = mask_phones

    def filter(self, record: logging.LogRecord) -> bool:
        mask_phones = self.mask_phones
        if mask_phones is None:
            mask_phones = logging.getLogger().getEffectiveLevel() > logging.DEBUG
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it when it formats the record
            return True
        # Read once per line: an event has a dozen fields.
        secrets = secret_values()
        record.msg = self.clean(message, mask_phones, secrets)
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {key: self.clean_value(key, value, mask_phones, secrets) for key, value in fields.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text, mask_phones, secrets)
        if record.stack_info:
            record.stack_info = self.clean(record.stack_info, mask_phones, secrets)
        return True

    @classmethod
    def clean_value(cls, key: str, value, mask_phones: bool, secrets: list[str] | None = None):
        """A field's value cleaned; a correlation id (a uuid whose last group may be all digits) is no phone."""
        if not isinstance(value, str) or key in UNMASKED_FIELDS:
            return value
        return cls.clean(value, mask_phones, secrets)

    @staticmethod
    def clean(text: str, mask_phones: bool, secrets: list[str] | None = None) -> str:
        """`text` with secrets (`secrets`, or all declared now) and token-like query values masked, phones too."""
        text = redact_query(redact(text, secrets))
        return phones_mask(text) if mask_phones else text

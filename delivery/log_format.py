"""
Log line formats: one JSON object per line (LOG_FORMAT=json, production), or today's
text with an event's fields appended as key=value (LOG_FORMAT=plain, for reading by eye).

A JSON line holds `ts` (UTC, ISO 8601), `level`, `logger`, then either `event` and the
event's fields (delivery.events) or `message` for a plain log line, and the correlation
id bound while the line was written (delivery.correlation), if any. Masking is not done
here: the RedactingFilter on the handler has already cleaned the message and the fields.
"""

import json
import logging
from datetime import UTC, datetime

from delivery.correlation import correlation_id_current

# Keys of a JSON line that an event's fields never overwrite.
RESERVED_KEYS = frozenset({"ts", "level", "logger", "event", "message"})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        name = getattr(record, "event", None)
        if isinstance(name, str):
            line["event"] = name
        else:
            line["message"] = record.getMessage()
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update((str(key), value) for key, value in fields.items() if key not in RESERVED_KEYS)
        correlation_id = correlation_id_current()
        if correlation_id:
            line.setdefault("correlation_id", correlation_id)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return text

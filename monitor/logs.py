"""One log line per event, with stable keys: `event source=dawn status=ok new=3 ms=412`.

`MONITOR_LOG_FORMAT=json` turns each line into one JSON object with the same keys, for log
shippers. Every line passes a redaction filter that replaces the values of the configured
secrets (Slack token, webhook URL, SMTP password, ...) wherever they appear, so a token in an
exception message or a URL never reaches the log. `redact_standard_streams` puts the same
filter in front of stdout and stderr, for what commands print and for tracebacks.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

ROOT = "monitor"
REDACTED = "[redacted]"
FORMAT_ENV = "MONITOR_LOG_FORMAT"


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log event `name` with `fields` as key=value pairs (and as JSON keys in JSON mode)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"event": name, "fields": fields})


def _value(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _traceback(record: logging.LogRecord, formatter: logging.Formatter) -> str | None:
    """The record's traceback: as RedactSecrets rendered it (scrubbed), else formatted now."""
    if record.exc_text:
        return record.exc_text
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return None


class KeyValueFormatter(logging.Formatter):
    """`2026-11-23T08:00:00Z INFO poll source=dawn status=ok new=3`."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields: dict[str, Any] = getattr(record, "fields", {})
        parts = [when, record.levelname, record.getMessage()]
        parts += [f"{key}={_value(value)}" for key, value in fields.items()]
        line = " ".join(parts)
        if traceback := _traceback(record, self):
            line += "\n" + traceback
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event, logger, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", record.getMessage()),
            "logger": record.name,
        }
        if not hasattr(record, "event"):
            payload["message"] = record.getMessage()
        payload.update(getattr(record, "fields", {}))
        if traceback := _traceback(record, self):
            payload["exception"] = traceback
        return json.dumps(payload, ensure_ascii=False, default=str)


class RedactSecrets(logging.Filter):
    """Replaces secret values in the message, its arguments and its fields."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()

    def set_secrets(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self.scrub(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if fields:
            record.fields = {
                key: self.scrub(value) if isinstance(value, str) else value
                for key, value in fields.items()
            }
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, scrubbed, for the formatter to show (`_traceback`).
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


redactor = RedactSecrets()


class RedactingWriter(io.TextIOBase):
    """A text stream that passes everything to `inner` with the secrets replaced.

    A secret is replaced when one `write` holds it whole: `print`, Rich and the traceback
    printer write a line (or more) at a time. There is no `buffer`, so nothing (click looks for
    one) can write bytes past the filter.
    """

    def __init__(self, inner: TextIO, secrets: RedactSecrets) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = secrets

    @property
    def encoding(self) -> str:  # type: ignore[override]  # io.TextIOBase declares it an attribute
        return self.inner.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.inner.errors

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.inner.write(self.secrets.scrub(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()


def redact_standard_streams() -> None:
    """From now on stdout and stderr hide the secrets too: command output, tracebacks."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingWriter):
            setattr(sys, name, RedactingWriter(stream, redactor))


def json_logs() -> bool:
    """True when `$MONITOR_LOG_FORMAT` is `json`: every line on stderr is a JSON object."""
    return os.environ.get(FORMAT_ENV, "").strip().lower() == "json"


def setup_logging(level: int = logging.INFO, stream: Any = None) -> None:
    """Configure the `monitor` loggers once: format from $MONITOR_LOG_FORMAT, secrets redacted."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs() else KeyValueFormatter())
    handler.addFilter(redactor)
    root = logging.getLogger(ROOT)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # Libraries log through the root logger; keep their warnings, scrubbed the same way.
    library = logging.getLogger()
    library.handlers[:] = [handler]
    library.setLevel(logging.WARNING)

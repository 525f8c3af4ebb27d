"""Structured logs: every line carries the request id and agency of the call it belongs to
("-" outside a call), as text or as one JSON object per line.

FVS code never logs an image, an embedding, a consent reference or a citizen ID; as a second
line of defence, any run of exactly 13 digits in a message (the shape of a citizen ID) is
replaced by ``<citizen-id>`` before it is written, whoever logged it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from typing import Literal, TextIO

from fvs.observability.context import current_call

LogFormat = Literal["text", "json"]
CITIZEN_ID_SHAPE = re.compile(r"(?<!\d)\d{13}(?!\d)")
REDACTED = "<citizen-id>"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(agency)s]: %(message)s"


def redact(text: str) -> str:
    return CITIZEN_ID_SHAPE.sub(REDACTED, text)


class CallFields(logging.Filter):
    """Adds ``request_id``, ``agency`` and ``method`` of the call in progress to each record,
    and redacts citizen-ID-shaped numbers from its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = current_call()
        record.request_id = call.request_id if call is not None else "-"
        record.agency = (call.agency or "-") if call is not None else "-"
        record.method = call.method if call is not None else "-"
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "agency": getattr(record, "agency", "-"),
            "method": getattr(record, "method", "-"),
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatException(self, ei: logging._SysExcInfoType) -> str:  # noqa: N802 - stdlib name
        return redact(super().formatException(ei))


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a line is logged, not as it was when logging was
    configured: where stderr is swapped (a test capturing output), a background thread's late
    line never goes to a stream closed behind it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Send every log line to stderr in ``fmt``, with the call's fields (replaces handlers)."""
    handler = StderrHandler()
    handler.addFilter(CallFields())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())

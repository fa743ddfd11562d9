"""Structured logs: one JSON object per line, for our lines and uvicorn's alike.

``coordinator serve`` installs ``logging_config`` (through uvicorn, which applies it with
``dictConfig``). A request is one line of the ``coordinator.request`` logger, written by
``observe.py``; what it holds is chosen there, and never includes a key, a header or a body.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REQUEST_LOGGER = "coordinator.request"
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...fields}``; ``fields`` come from
    ``extra={"fields": {...}}``, an exception as one ``exception`` string."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once a second, not once a line
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        line: dict[str, Any] = {
            "ts": f"{self._second_text}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


def logging_config(level: str = "INFO", request_lines: bool = True) -> dict[str, Any]:
    """A ``dictConfig`` dict: every logger (uvicorn's too) writes JSON lines to stderr at
    ``level``. Without ``request_lines`` the request logger keeps only warnings (5xx).
    uvicorn's own access log is off either way: ``coordinator.request`` replaces it."""
    request_level = level if request_lines else max(level, "WARNING", key=LEVELS.index)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own config gives these handlers; ours replace them.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            REQUEST_LOGGER: {"level": request_level},
        },
    }

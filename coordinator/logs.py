"""Structured logs: one JSON object per line, for our lines and uvicorn's alike.

``coordinator serve`` installs ``logging_config`` (through uvicorn, which applies it with
``dictConfig``). A request is one line of the ``coordinator.request`` logger, written by
``observe.py``; what it holds is chosen there, and never includes a key, a header or a body.

A line per request is a third of a hook's CPU when each goes through ``logging`` on its own
(a ``LogRecord``, the handler's lock, a write and a flush: BENCHMARKS.md). So ``JsonLines``
writes the lines of one event-loop turn together, and ``request_line`` skips building a
``LogRecord`` when that handler is the only place the line can go.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import IO, Any, cast

import msgspec

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REQUEST_LOGGER = "coordinator.request"
# Past this many characters waiting, the lines go out before the loop turn ends.
BATCH_CHARS = 64 * 1024
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...fields}``; ``fields`` come from
    ``extra={"fields": {...}}``, an exception as one ``exception`` string."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""
        # (level, logger, message): those keys and values as JSON, for fields_line
        self._heads: dict[tuple[int, str, str], str] = {}

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(
            int(record.created),
            int(record.msecs),
            record.levelname,
            record.name,
            record.getMessage(),
            fields,
            exception,
        )

    def line(
        self,
        second: int,
        msecs: int,
        level: str,
        logger: str,
        message: str,
        fields: dict[str, Any] | None = None,
        exception: str | None = None,
    ) -> str:
        """One line, without its newline; ``second`` since the epoch, and ``msecs`` past it."""
        line: dict[str, Any] = {
            "ts": self._timestamp(second, msecs),
            "level": level,
            "logger": logger,
            "message": message,
        }
        if fields:
            line.update(fields)
        if exception is not None:
            line["exception"] = exception
        return _encoder.encode(line).decode()

    def fields_line(
        self, created: float, level: int, logger: str, message: str, fields: dict[str, Any]
    ) -> str:
        """The ``line`` of a record with ``fields`` and no exception, made with one encoding
        of the fields: the level, logger and message are encoded once (a request line's)."""
        second = int(created)
        head = self._heads.get((level, logger, message))
        if head is None:
            names = {"level": logging.getLevelName(level), "logger": logger, "message": message}
            head = self._heads[level, logger, message] = _encoder.encode(names).decode()[1:-1]
        rest = _encoder.encode(fields).decode()[1:] if fields else "}"
        stamp = self._timestamp(second, int((created - second) * 1000))
        return f'{{"ts":"{stamp}",{head}{"," if fields else ""}{rest}'

    def _timestamp(self, second: int, msecs: int) -> str:
        if second != self._second:  # strftime once a second, not once a line
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{msecs:03d}Z"


class JsonLines(logging.Handler):
    """Writes ``JsonFormatter`` lines to ``stream``. In a thread running an event loop, the
    request lines (at INFO) of one loop turn go out together, in one write, when the turn
    ends (or once ``BATCH_CHARS`` wait). Any other line writes at once, with whatever
    waits: a warning, a line from another thread, and uvicorn's own, whose last ones it
    logs just before it ends the process by raising the signal that stopped it (no
    ``atexit``, no ``logging.shutdown``); so do ``flush()`` and ``close()``."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.formatter = JsonFormatter()
        self._lines: list[str] = []
        self._chars = 0
        self._flush_on: asyncio.AbstractEventLoop | None = None  # a flush is due on it

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(self.format(record), record.levelno, record.name == REQUEST_LOGGER)
        except Exception:
            self.handleError(record)

    def write(self, line: str, level: int, request: bool) -> None:
        """Queue a request's line (written by the end of the loop turn), or write now."""
        self._lines.append(line)
        self._chars += len(line)
        if not request or level >= logging.WARNING or self._chars >= BATCH_CHARS:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: nothing would end its turn
            self.flush()
            return
        if self._flush_on is not loop:
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            self._flush_on = None
            # Swapped, not cleared: a line another thread adds meanwhile is in one or the other.
            lines, self._lines = self._lines, []
            self._chars = 0
            if lines:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
        except Exception:  # as logging's own handlers do: report it on stderr, go on
            self.handleError(logging.makeLogRecord({"msg": "log lines lost"}))
        finally:
            self.release()

    def close(self) -> None:
        self.flush()
        super().close()


def sole_handler(logger: logging.Logger, level: int) -> JsonLines | None:
    """The one ``JsonLines`` a record of ``logger`` at ``level`` would reach, when no filter
    and no other handler is on its way; else None. A few attribute reads: checked per line,
    so a change of the logging configuration takes effect at once."""
    found: JsonLines | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or current.disabled:
            return None
        for handler in current.handlers:
            if found is not None or type(handler) is not JsonLines or handler.filters:
                return None
            if type(handler.formatter) is not JsonFormatter:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    if found is None or level < found.level:
        return None
    return found


def request_line(logger: logging.Logger, level: int, fields: dict[str, Any]) -> None:
    """Log the line ``{"message": "request", **fields}`` at ``level``, which ``logger`` is
    enabled for: what ``logger.log(level, "request", extra={"fields": fields})`` writes,
    without the ``LogRecord`` where a ``JsonLines`` is the line's only destination."""
    handler = sole_handler(logger, level)
    if handler is None:
        # makeRecord + handle is log.log without its search of the stack for a caller.
        extra = {"fields": fields}
        record = logger.makeRecord(logger.name, level, "", 0, "request", (), None, None, extra)
        logger.handle(record)
        return
    formatter = cast(JsonFormatter, handler.formatter)
    line = formatter.fields_line(time.time(), level, logger.name, "request", fields)
    handler.write(line, level, logger.name == REQUEST_LOGGER)


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
                "()": JsonLines,
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

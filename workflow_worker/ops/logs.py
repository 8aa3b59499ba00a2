"""Structured logs: JSON lines by default, readable text on a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["JsonFormatter", "flush_logs", "setup_logging"]

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    fields = record.__dict__
    return {k: fields[k] for k in fields.keys() - _STANDARD if k[0] != "_"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    _second = -1
    _prefix = ""

    def _time(self, created: float) -> str:
        # Formatting a datetime per line is costly at thousands of lines a second; the
        # second-resolution part changes once a second.
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_extras(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += "  " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class BufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes through a 64 KiB buffer, flushed at most `interval` seconds after a line is
    written, and at once for warnings.

    At thousands of jobs a second one write system call per line costs more than the job; a
    SIGKILL loses at most the last `interval` seconds of INFO lines (WORKER_LOG_FLUSH_INTERVAL;
    0 flushes every line).
    """

    def __init__(self, stream: TextIO, interval: float = 0.2) -> None:
        self.interval = interval
        buffered = open(  # noqa: SIM115 - the handler owns it for the life of the process
            stream.fileno(), "w", buffering=65536, closefd=False, errors="backslashreplace"
        )
        super().__init__(buffered)
        # Hold the owner of the file descriptor: if it were collected, the descriptor would be
        # closed and could be reused by a socket that the buffer would then write into.
        self._owner = stream
        self._last = time.monotonic()
        self._flush_due: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            now = time.monotonic()
            if record.levelno >= logging.WARNING or now - self._last >= self.interval:
                self.flush()
                self._last = now
            elif self._flush_due is None or now > self._flush_due + 1.0:
                # (Overdue: the loop that held the timer is gone; schedule on this one.)
                self._flush_later(now)
        except Exception:
            self.handleError(record)

    def _flush_later(self, now: float) -> None:
        """Flush a line that no later line may flush, `interval` seconds from now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop in this thread: the next line or the exit flushes it
        loop.call_later(self.interval, self._timed_flush)
        self._flush_due = now + self.interval

    def _timed_flush(self) -> None:
        self._flush_due = None
        with contextlib.suppress(OSError, ValueError):
            self.flush()
        self._last = time.monotonic()


def flush_logs() -> None:
    """Flush buffered log lines now (at exit; otherwise a line flushes within its interval)."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(OSError, ValueError):
            handler.flush()


def setup_logging(
    fmt: str, level: str, stream: TextIO | None = None, flush_interval: float = 0.2
) -> None:
    """Configure the root logger once: `fmt` is json, text or auto (text on a TTY)."""
    out = stream or sys.stderr
    use_text = fmt == "text" or (fmt == "auto" and out.isatty())
    handler: logging.Handler
    if use_text:
        handler = logging.StreamHandler(out)
        handler.setFormatter(TextFormatter())
    else:
        handler = BufferedHandler(out, flush_interval)
        handler.setFormatter(JsonFormatter())
    # The job lines are on the hot path: skip the caller lookup and the thread/process fields.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp logs every request at INFO; probes would drown the job lines.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

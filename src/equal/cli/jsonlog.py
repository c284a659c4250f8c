"""JSON-lines output for scripts: one object per line on stdout, flushed as it happens.

Events: ``stage_start``, ``progress`` (at most one a second per stage),
``note``, ``stage_end``, ``log`` (a log record), ``cell`` (one finished run
of ``equal bench``, with its measures), ``result`` (the command's summary)
and ``error``. Each carries ``time`` (Unix seconds).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

_lock = threading.Lock()


def emit(event: str, stream: IO[str] | None = None, **fields: Any) -> None:
    """Write one event line and flush it, so a reader sees it at once."""
    out = stream or sys.stdout
    line = json.dumps({"event": event, "time": round(time.time(), 3), **fields}, default=str, ensure_ascii=False)
    with _lock:
        out.write(line + "\n")
        out.flush()


class _JsonTask:
    def __init__(self, stage: str, total: int | None, stream: IO[str] | None, interval: float) -> None:
        self.stage, self.total, self.stream, self.interval = stage, total, stream, interval
        self.completed = 0
        self._last = 0.0

    def advance(self, n: int = 1) -> None:
        self.completed += n
        now = time.monotonic()
        if now - self._last >= self.interval or (self.total is not None and self.completed >= self.total):
            self._last = now
            emit("progress", self.stream, stage=self.stage, completed=self.completed, total=self.total)

    def note(self, text: str) -> None:
        emit("note", self.stream, stage=self.stage, note=text)


class JsonLinesProgress:
    """The library's progress interface, as JSON lines."""

    def __init__(self, stream: IO[str] | None = None, interval: float = 1.0) -> None:
        self.stream = stream
        self.interval = interval

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[_JsonTask]:
        emit("stage_start", self.stream, stage=description, total=total)
        started = time.monotonic()
        task = _JsonTask(description, total, self.stream, self.interval)
        try:
            yield task
        finally:
            emit("stage_end", self.stream, stage=description, completed=task.completed,
                 seconds=round(time.monotonic() - started, 3))


class JsonLogHandler(logging.Handler):
    """Log records as ``log`` events."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        emit("log", self.stream, level=record.levelname.lower(), logger=record.name, message=record.getMessage())

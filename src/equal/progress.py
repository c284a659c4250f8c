"""A progress interface the library reports to and the CLI draws.

The library never prints: long loops call ``progress.track(...)``; the CLI
passes a rich implementation, the API defaults to :class:`NullProgress`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...
    def note(self, text: str) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None) -> AbstractContextManager[Task]: ...


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class NullProgress:
    """Reports nothing."""

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        yield _NullTask()

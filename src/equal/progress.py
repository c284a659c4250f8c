"""A progress interface the library reports to and the CLI draws.

The library never prints: long loops open ``progress.task(...)`` and advance
it; the CLI passes a rich implementation, the API defaults to
:class:`NullProgress`.

Per-item progress inside one call. A loop that hands a whole batch to one
call (documents to the extractor, texts to the embedder) wraps the call in
:func:`items_to`; code deep inside that call (the extractor as each LLM
answer arrives, the sentence-transformers embedder after each forward pass)
reports finished items through :func:`item_reporter`, so the bar moves per
item without any signature changing. A callee that reports nothing is
counted when the call returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
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


#: Called with how many items just finished.
ItemsDone = Callable[[int], None]

_ITEMS: ContextVar[ItemsDone | None] = ContextVar("equal_items_done", default=None)


def _ignore(n: int) -> None:
    pass


def item_reporter() -> ItemsDone:
    """Where the code running now reports finished items: the innermost :func:`items_to`, or nowhere.

    Call it in the calling thread and keep the result: a callback run on another
    thread (a backend's worker) does not see the caller's context.
    """
    return _ITEMS.get() or _ignore


class ItemCount:
    """Moves ``task`` by the items reported done, never past ``total``; :meth:`finish` moves it by what is left."""

    def __init__(self, task: Task, total: int) -> None:
        self._task, self._total, self._reported = task, total, 0
        self._lock = threading.Lock()

    def done(self, n: int) -> None:
        with self._lock:
            n = max(0, min(n, self._total - self._reported))  # never past the count's own total
            self._reported += n
        if n:
            self._task.advance(n)

    def finish(self) -> None:
        self.done(self._total)


@contextmanager
def reporting_to(done: ItemsDone) -> Iterator[None]:
    """Inside the block, :func:`item_reporter` is ``done``."""
    token = _ITEMS.set(done)
    try:
        yield
    finally:
        _ITEMS.reset(token)


@contextmanager
def items_to(task: Task, total: int) -> Iterator[None]:
    """Advance ``task`` as code inside the block reports items done, and by what is left of ``total`` after it.

    A block that raises advances nothing more than what was reported.
    """
    count = ItemCount(task, total)
    with reporting_to(count.done):
        yield
    count.finish()

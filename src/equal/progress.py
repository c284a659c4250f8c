"""A progress interface the library reports to and the CLI draws.

The library never prints: long loops open ``progress.task(...)`` and advance
it; the CLI passes a rich implementation, the API defaults to
:class:`NullProgress`.

Per-item progress inside one call. A loop that hands a whole batch to one
call (documents to the extractor, texts to the embedder) opens
:func:`counting` on its task and passes the :data:`ItemsDone` it yields to
the call, which reports its items as they finish (the extractor as each LLM
answer arrives, the sentence-transformers embedder after each forward pass);
what the call did not report is counted when the block ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
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


#: Called with how many items just finished.
ItemsDone = Callable[[int], None]


def ignore_items(n: int) -> None:
    """An :data:`ItemsDone` that reports nowhere."""


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
def counting(task: Task, total: int) -> Iterator[ItemsDone]:
    """Count ``total`` items on ``task``: yields where the block's call reports items done, and moves the task by
    what is left of ``total`` after the block.

    A block that raises advances nothing more than what was reported.
    """
    count = ItemCount(task, total)
    yield count.done
    count.finish()

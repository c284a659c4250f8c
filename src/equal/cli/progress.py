"""The CLI's progress: rich bars on a terminal, plain lines in a log.

On a terminal every row fits the console, 80 columns included: the
description is cut with an ellipsis to leave room for the bar, the count,
the elapsed time and the ETA, and a task's note goes on its own line under
its row, cut to the width.

On a console that is not a terminal (output to a file or a pipe) no bars
are drawn, as rich would only print them at the very end: each task writes
a line when it starts and ends, one per note, and one with its count and
ETA at most every ``interval`` seconds, so a log shows the command is alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

DESCRIPTION_WIDTH = 28  # the most columns a description takes; a longer one ends in an ellipsis
BAR_WIDTH = (10, 30)  # the bar's narrowest and widest
_TIME_WIDTH = 8  # h:mm:ss, or hh:mm:ss past ten hours
PLAIN_INTERVAL = 10.0  # seconds between two count lines of one task when there are no bars


class _FittedProgress(Progress):
    """rich's Progress with every row fitted to the console's width and each note on a line of its own."""

    def __init__(self, console: Console | None) -> None:
        self._description = Column(no_wrap=True, overflow="ellipsis")
        self._count = Column(no_wrap=True, justify="right")
        self._bar = BarColumn(bar_width=BAR_WIDTH[0])
        super().__init__(
            SpinnerColumn(table_column=Column(width=1, no_wrap=True)),
            TextColumn("{task.description}", style="bold", markup=False, table_column=self._description),
            self._bar,
            MofNCompleteColumn(table_column=self._count),
            TimeElapsedColumn(table_column=Column(width=_TIME_WIDTH, no_wrap=True, justify="right")),
            TextColumn("eta", table_column=Column(width=3, no_wrap=True)),
            TimeRemainingColumn(table_column=Column(width=_TIME_WIDTH, no_wrap=True, justify="right")),
            console=console, transient=False,
        )

    def _fit(self, tasks: list[Task]) -> None:
        """Share the console's width: the fixed columns first, then the description, then the bar."""
        count = max((_count_width(t) for t in tasks), default=3)
        gaps = len(self.columns) - 1
        room = self.console.width - (1 + count + _TIME_WIDTH + 3 + _TIME_WIDTH + gaps)
        longest = max((len(t.description) for t in tasks), default=0)
        description = max(8, min(longest, DESCRIPTION_WIDTH, room - BAR_WIDTH[0]))
        self._description.width = description
        self._count.width = count
        self._bar.bar_width = max(1, min(BAR_WIDTH[1], room - description))

    def get_renderables(self) -> Iterable[RenderableType]:
        tasks = [t for t in self.tasks if t.visible]
        if not tasks:
            return  # also while rich's Progress is still being built
        self._fit(tasks)
        for task in tasks:
            yield self.make_tasks_table([task])
            note = task.fields.get("note")
            if note:
                yield Text(f"  {note}", style="dim", no_wrap=True, overflow="ellipsis")


def _count_width(task: Task) -> int:
    """Columns of MofNCompleteColumn's text: completed, a slash, total."""
    total = "?" if task.total is None else str(int(task.total))
    return max(len(str(int(task.completed))), len(total)) + 1 + len(total)


class _RichTask:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._id, n)

    def note(self, text: str) -> None:
        self._progress.update(self._id, note=text)


class _PlainTask:
    """A task written as plain lines: a count line at most every ``interval`` seconds, one line per note."""

    def __init__(self, console: Console, description: str, total: int | None, interval: float) -> None:
        self._console, self.description, self.total, self._interval = console, description, total, interval
        self.completed = 0
        self.started = self._last = time.monotonic()
        self._lock = threading.Lock()

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.completed += n
            now = time.monotonic()
            if now - self._last < self._interval:
                return
            self._last = now
        self.line()

    def note(self, text: str) -> None:
        with self._lock:
            self._last = time.monotonic()
        self.line(text)

    def line(self, note: str | None = None) -> None:
        self._console.print(f"{self.description}: {self.status()}" + (f" | {note}" if note else ""),
                            markup=False, highlight=False, soft_wrap=True)

    def status(self) -> str:
        """``completed/total (percent), elapsed, eta`` (the ETA from the rate so far)."""
        elapsed = time.monotonic() - self.started
        if self.total is None:
            return (f"{self.completed} done, " if self.completed else "") + f"{_clock(elapsed)} elapsed"
        percent = 100 * self.completed / self.total if self.total else 100.0
        eta = (_clock(elapsed / self.completed * (self.total - self.completed))
               if 0 < self.completed <= self.total else "-:--:--")
        return f"{self.completed}/{self.total} ({percent:.0f}%), {_clock(elapsed)} elapsed, eta {eta}"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class RichProgress:
    """One live display on a terminal, a bar per stage with its count and ETA; plain lines elsewhere.

    Args:
        console: where to draw (default: rich's, on stdout).
        interval: seconds between two count lines of one task when the console is not a terminal.
    """

    def __init__(self, console: Console | None = None, interval: float = PLAIN_INTERVAL) -> None:
        self._progress = _FittedProgress(console)
        self.console = self._progress.console
        self.plain = not self.console.is_terminal
        self.interval = interval

    @property
    def renderable(self) -> RenderableType:
        """What the live display shows now: a row per task, each note on a line under its row."""
        return self._progress.get_renderable()

    def __enter__(self) -> RichProgress:
        if not self.plain:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.plain:
            self._progress.stop()

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[_RichTask | _PlainTask]:
        if self.plain:
            with self._plain_task(description, total) as plain:
                yield plain
            return
        task_id = self._progress.add_task(description, total=total, note="")
        try:
            yield _RichTask(self._progress, task_id)
        finally:
            task = self._progress.tasks[task_id]
            self._progress.update(task_id, total=task.completed if total is None else total,
                                  completed=task.completed if total is None else max(task.completed, 0))

    @contextmanager
    def _plain_task(self, description: str, total: int | None) -> Iterator[_PlainTask]:
        task = _PlainTask(self.console, description, total, self.interval)
        self.console.print(f"{description}: started" + ("" if total is None else f", {total} to do"),
                           markup=False, highlight=False, soft_wrap=True)
        yield task
        self.console.print(f"{description}: finished, {task.status()}", markup=False, highlight=False,
                           soft_wrap=True)

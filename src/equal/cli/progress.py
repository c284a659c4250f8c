"""rich progress bars for the library's progress interface."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _RichTask:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._id, n)

    def note(self, text: str) -> None:
        self._progress.update(self._id, note=text)


class RichProgress:
    """One live display; each stage adds a bar with ETA and a note column."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
            console=console, transient=False,
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[_RichTask]:
        task_id = self._progress.add_task(description, total=total, note="")
        try:
            yield _RichTask(self._progress, task_id)
        finally:
            task = self._progress.tasks[task_id]
            self._progress.update(task_id, total=task.completed if total is None else total,
                                  completed=task.completed if total is None else max(task.completed, 0))

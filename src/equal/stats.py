"""Counters with reasons, saved to ``stats.json``, and the seconds each stage took.

Every skip, failure and paid call bumps a named counter so a run can say
exactly what happened to each input (datatrove's ``stat_update`` idea).
Stages are timed apart from the counters: counters describe what was done
and are the same for the same inputs, seconds are not.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


class Stats:
    """A thread-safe bag of named counters, and of seconds per named stage."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall seconds spent inside the block to ``stage``.

        Stages nest by name: ``rounds/reward/ot`` is part of ``rounds/reward``.
        """
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._seconds[stage] = self._seconds.get(stage, 0.0) + elapsed

    def seconds(self) -> dict[str, float]:
        """Seconds per stage, rounded to the millisecond, by stage name."""
        with self._lock:
            return {k: round(v, 3) for k, v in sorted(self._seconds.items())}

    def inc(self, key: str, n: int | float = 1) -> None:
        """Add ``n`` to counter ``key``."""
        with self._lock:
            self._counts[key] += n  # type: ignore[assignment]

    def get(self, key: str) -> int | float:
        return self._counts.get(key, 0)

    def as_dict(self) -> dict[str, int | float]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def update(self, other: Mapping[str, int | float]) -> None:
        with self._lock:
            for k, v in other.items():
                self._counts[k] += v  # type: ignore[assignment]

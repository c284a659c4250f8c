"""Counters with reasons, saved to ``stats.json``.

Every skip, failure and paid call bumps a named counter so a run can say
exactly what happened to each input (datatrove's ``stat_update`` idea).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping


class Stats:
    """A thread-safe bag of named counters."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

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

"""Every LLM answer, stored by a hash of model and request, so nothing is paid twice."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from equal.records import Generation


class ResponseCache:
    """A SQLite table of generations keyed by :meth:`ChatRequest.key`.

    Each answer is committed as soon as it arrives (WAL mode), so a run that
    is killed keeps every call it paid for.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT, "
            "tokens_in INTEGER, tokens_out INTEGER, metadata TEXT)"
        )

    def get(self, key: str) -> Generation | None:
        row = self._db.execute(
            "SELECT text, tokens_in, tokens_out, metadata FROM responses WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return Generation(text=row[0], tokens_in=row[1], tokens_out=row[2], cached=True,
                          metadata=json.loads(row[3] or "{}"))

    def put(self, key: str, generation: Generation) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                (key, generation.text, generation.tokens_in, generation.tokens_out,
                 json.dumps(generation.metadata)),
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()

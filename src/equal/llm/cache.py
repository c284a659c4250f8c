"""Every LLM answer, stored by a hash of model and request, so nothing is paid twice."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from equal.errors import CacheDamaged
from equal.records import Generation
from equal.sqlite import SQLiteFile


class ResponseCache(SQLiteFile):
    """A SQLite table of generations keyed by :meth:`ChatRequest.key`.

    Each answer is committed as soon as it arrives (WAL mode), so a run that
    is killed keeps every call it paid for. The file is checked when it is
    opened (``PRAGMA quick_check``). Its answers were paid for, so a damaged
    file is never replaced or deleted: it is a :class:`CacheDamaged` error
    that says how to recover it.

    Raises:
        CacheDamaged: the file is not a sound SQLite database (at open or later).
        DiskFull: the disk filled up while an answer was being stored.
    """

    TABLE = ("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT, "
             "tokens_in INTEGER, tokens_out INTEGER, metadata TEXT)")
    KIND = "the response cache"
    FULL_NOTE = " (every answer stored before is kept; answers that could not be stored are asked again next time)"

    def get(self, key: str) -> Generation | None:
        """The answer stored under ``key``; ``None`` when there is none.

        A row that cannot be read as an answer (text that is not text, metadata
        that is not a JSON object: a row edited or damaged by hand) comes back
        as a failed generation, with the reason in ``error``, so the caller asks
        again instead of using it.
        """
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT text, tokens_in, tokens_out, metadata FROM responses WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                self._fail(exc)
        if row is None:
            return None
        return _generation(*row)

    def put(self, key: str, generation: Generation) -> None:
        with self._lock:
            try:
                with self._db:
                    self._db.execute(
                        "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                        (key, generation.text, generation.tokens_in, generation.tokens_out,
                         json.dumps(generation.metadata)),
                    )
            except sqlite3.DatabaseError as exc:
                self._fail(exc)

    def __len__(self) -> int:
        with self._lock:
            try:
                return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
            except sqlite3.DatabaseError as exc:
                self._fail(exc)

    def _damaged(self, detail: str) -> CacheDamaged:
        path = self.path
        return CacheDamaged(
            f"the response cache {path} is damaged ({detail}). It holds LLM answers that were paid for, so equal "
            f"neither repairs nor replaces it. To keep what can be saved, run (with the sqlite3 program, "
            f"`apt-get install sqlite3`) "
            f"`sqlite3 {path} \".recover\" | sqlite3 {path}.recovered`, then move {path.name} (with its -wal and -shm "
            f"files, if any) out of {path.parent} and rename {path.name}.recovered to {path.name}; or move it out to "
            "start with an empty cache (its answers will be paid for again). Then run the same command again."
        )


def _generation(text: object, tokens_in: Any, tokens_out: Any, metadata: object) -> Generation:
    """A stored row as a generation, or a failed one saying why the row is not an answer."""
    problem = None
    decoded: object = {}
    if metadata is not None:  # a row may have no metadata
        try:
            decoded = json.loads(metadata) if isinstance(metadata, (str, bytes)) else None
        except (ValueError, RecursionError):
            decoded = None
    if not isinstance(decoded, dict):
        decoded, problem = {}, f"its metadata {str(metadata)[:40]!r} is not a JSON object"
    if not isinstance(text, str):
        problem = f"its text is {type(text).__name__}, not text"
    # token counts are the reader's to judge (an older version may have stored them out of range)
    return Generation(text=text if isinstance(text, str) else "", tokens_in=tokens_in, tokens_out=tokens_out,
                      cached=True, metadata=decoded, error=f"a damaged cache row: {problem}" if problem else "")

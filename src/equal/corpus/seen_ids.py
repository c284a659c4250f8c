"""The ids a corpus read has already given out, in bounded memory.

A Python set of ten million id strings takes over a gigabyte, the one part of
reading a corpus that would grow with it. :class:`SeenIds` keeps the newest
ids in a set and, whenever that set is full, moves them into a private
temporary SQLite database (deleted when it is closed, or when the process
dies), whose pages beyond a small cache live on disk. A corpus of up to a
million passages never touches SQLite.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from equal.errors import StorageError

IN_MEMORY = 1_000_000  # ids held in the set before they move to SQLite (about 100 MB)
_CACHE_KIB = 65_536  # SQLite's page cache: the rest of the table is read from its file


@contextmanager
def _advice() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(
            f"the corpus reader could not keep the ids it has read in a temporary SQLite file in "
            f"{tempfile.gettempdir()} ({exc}); free space there, or set TMPDIR to a folder on a disk with room"
        ) from exc


class SeenIds:
    """A set of strings (that UTF-8 can encode) that moves to a temporary SQLite table past ``in_memory`` of them.

    SQLite writes the table to a file in the system's temporary folder
    (``TMPDIR``); where that folder is in memory (a tmpfs), point ``TMPDIR``
    at a disk for corpora of tens of millions of passages.
    """

    def __init__(self, in_memory: int | None = None) -> None:
        in_memory = IN_MEMORY if in_memory is None else in_memory
        if in_memory < 1:
            raise ValueError(f"in_memory must be at least 1, got {in_memory}")
        self.in_memory = in_memory
        self._recent: set[str] = set()
        self._db: sqlite3.Connection | None = None  # opened on the first move

    def __contains__(self, id_: str) -> bool:
        if id_ in self._recent:
            return True
        if self._db is None:
            return False
        with _advice():
            return self._db.execute("SELECT 1 FROM ids WHERE id = ?", (id_,)).fetchone() is not None

    def add(self, id_: str) -> None:
        self._recent.add(id_)
        if len(self._recent) >= self.in_memory:
            self._move_to_disk()

    def update(self, ids: Iterable[str]) -> None:
        for id_ in ids:
            self.add(id_)

    def _move_to_disk(self) -> None:
        with _advice():
            if self._db is None:
                # "" is a private temporary database: SQLite removes its file itself
                self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
                self._db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
                self._db.execute("PRAGMA journal_mode = OFF")  # nothing to recover: the table dies with the read
                self._db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
            self._db.execute("BEGIN")  # one transaction for the whole batch, in key order for the B-tree
            try:
                self._db.executemany("INSERT OR IGNORE INTO ids VALUES (?)",
                                     ((id_,) for id_ in sorted(self._recent)))
            except BaseException:
                self._db.execute("ROLLBACK")  # the ids stay in the set; a later move tries them again
                raise
            self._db.execute("COMMIT")
        self._recent.clear()

    def close(self) -> None:
        self._recent.clear()
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> SeenIds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""On-disk embedding cache keyed by (model name, text hash).

SQLite in WAL mode: each committed chunk survives a kill, so an embedding
stage that dies halfway resumes where it stopped. The file is checked when
it is opened (``PRAGMA quick_check``); a damaged one, found then or by a
later read or write, is renamed to ``NAME.damaged-<timestamp>`` (never
deleted) with a warning, and an empty cache takes its place: vectors can
always be computed again.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import NoReturn

import numpy as np

from equal.embedding.base import Embedder
from equal.errors import CacheDamaged
from equal.files import disk_full, is_disk_full, set_aside, sqlite_companions, sqlite_fault, sqlite_problems
from equal.progress import NullProgress, Progress, items_to

logger = logging.getLogger(__name__)


def text_key(model_name: str, text: str) -> str:
    return hashlib.sha256(f"{model_name}\x00{text}".encode()).hexdigest()


class _Damaged(Exception):
    """quick_check found the database damaged (internal: the file is set aside)."""


class EmbeddingCache:
    """Vectors stored by key in one SQLite file.

    Raises:
        DiskFull: the disk filled up while vectors were being stored.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if is_disk_full(exc):
                raise self._full() from exc
            raise
        try:
            self._db = self._connect()
        except (sqlite3.DatabaseError, _Damaged) as exc:
            if isinstance(exc, sqlite3.DatabaseError) and sqlite_fault(exc) != "damaged":
                self._fail(exc)
            self._set_aside(str(exc))
            self._db = self._connect()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            try:
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for key, blob in self._db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk):
                        found[key] = np.frombuffer(blob, dtype=np.float32)
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return {}  # the cache is empty now: every vector is computed again
        return found

    def put_many(self, keys: list[str], vectors: np.ndarray, *, replace: bool = True) -> None:
        """Store ``vectors`` under ``keys``; with ``replace=False`` a key already stored keeps its vector."""
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)]
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self._lock:
            for attempt in range(2):
                try:
                    with self._db:
                        self._db.executemany(f"{verb} INTO vectors VALUES (?, ?)", rows)
                    return
                except sqlite3.DatabaseError as exc:
                    if attempt or sqlite_fault(exc) != "damaged":
                        self._fail(exc)
                    self._recover(exc)

    def close(self) -> None:
        self._db.close()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            problems = sqlite_problems(db)
            if problems is not None:
                raise _Damaged(problems)
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB)")
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, detail: str) -> None:
        aside = set_aside(self.path, *sqlite_companions(self.path))
        logger.warning("the embedding cache %s is damaged (%s); it was moved to %s (delete that file when you no "
                       "longer need it) and its vectors are computed again", self.path, detail, aside.name)

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """After a failed read or write: set a damaged file aside and start an empty one; else raise."""
        if sqlite_fault(exc) != "damaged":
            self._fail(exc)
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        self._set_aside(str(exc))
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as again:
            self._fail(again)

    def _full(self) -> Exception:
        return disk_full(self.path.parent, f"the embedding cache {self.path.name}")

    def _fail(self, exc: sqlite3.DatabaseError) -> NoReturn:
        fault = sqlite_fault(exc)
        if fault == "full":
            raise self._full() from exc
        if fault == "damaged":  # even after it was set aside and started afresh
            raise CacheDamaged(f"the embedding cache {self.path} is still damaged after it was started afresh "
                               f"({exc}); check the disk holding {self.path.parent}, delete the file and run the "
                               "same command again") from exc
        raise exc


def embed_cached(
    embedder: Embedder,
    texts: list[str],
    cache: EmbeddingCache | None = None,
    *,
    chunk_size: int = 256,
    progress: Progress | None = None,
    description: str = "embedding",
) -> np.ndarray:
    """Embed ``texts``, reading what the cache has and storing what it lacks.

    Returns ``(len(texts), dim)`` float32 with unit-norm rows, in input order.
    """
    progress = progress or NullProgress()
    keys = [text_key(embedder.name, t) for t in texts]
    known = cache.get_many(keys) if cache is not None else {}
    missing = [i for i, k in enumerate(keys) if k not in known]
    with progress.task(description, total=len(texts)) as task:
        task.advance(len(texts) - len(missing))
        for start in range(0, len(missing), chunk_size):
            idx = missing[start : start + chunk_size]
            with items_to(task, len(idx)):  # an embedder that reports its batches moves the bar per batch
                vectors = embedder.encode([texts[i] for i in idx])
            chunk_keys = [keys[i] for i in idx]
            if cache is not None:
                cache.put_many(chunk_keys, vectors)
            known.update(zip(chunk_keys, vectors))
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.ascontiguousarray(np.stack([known[k] for k in keys]), dtype=np.float32)

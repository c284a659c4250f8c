"""On-disk embedding cache keyed by (model name, text hash).

SQLite in WAL mode: each committed chunk survives a kill, so an embedding
stage that dies halfway resumes where it stopped. The file is checked when
it is opened (``PRAGMA quick_check``); a damaged one, found then or by a
later read or write, is renamed to ``NAME.damaged-<timestamp>`` (never
deleted) with a warning, and an empty cache takes its place: vectors can
always be computed again. A single row that is not a vector of the embedder
(not bytes of float32, another dimension, NaN or infinite values, not of unit
norm) is a miss: embedded again, stored over the damaged row, counted in
:attr:`EmbeddingCache.damaged_rows` and warned about, never used.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path

import numpy as np

from equal.embedding.base import Embedder
from equal.errors import CacheDamaged
from equal.files import set_aside
from equal.progress import NullProgress, Progress, counting
from equal.sqlite import SQLiteFile, sqlite_companions, sqlite_fault

logger = logging.getLogger(__name__)


def text_key(model_name: str, text: str) -> str:
    return hashlib.sha256(f"{model_name}\x00{text}".encode()).hexdigest()


class EmbeddingCache(SQLiteFile):
    """Vectors stored by key in one SQLite file.

    Attributes:
        damaged_rows: rows read that were not a vector (and were embedded again), since the cache was opened.

    Raises:
        DiskFull: the disk filled up while vectors were being stored.
    """

    TABLE = "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB)"
    KIND = "the embedding cache"

    def __init__(self, path: str | Path) -> None:
        self.damaged_rows = 0
        super().__init__(path)

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            try:
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for key, blob in self._db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk):
                        if isinstance(blob, bytes) and blob and len(blob) % 4 == 0:
                            found[key] = np.frombuffer(blob, dtype=np.float32)
                        else:  # NULL, text, or bytes that are no float32 array: embedded again by the caller
                            self.damaged_rows += 1
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
                    if attempt:  # the file started afresh failed too
                        self._fail(exc)
                    self._recover(exc)

    def _open_damaged(self, exc: Exception) -> sqlite3.Connection:
        """Vectors can be computed again: the damaged file is set aside and an empty one takes its place."""
        self._set_aside(str(exc))
        return self._reconnect()

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
        self._db = self._reconnect()

    def _damaged(self, detail: str) -> CacheDamaged:
        # only once the file was set aside and started afresh: a disk that keeps damaging what is written
        return CacheDamaged(f"the embedding cache {self.path} is still damaged after it was started afresh "
                            f"({detail}); check the disk holding {self.path.parent}, delete the file and run the "
                            "same command again")


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
    damaged_before = cache.damaged_rows if cache is not None else 0
    cached = cache.get_many(keys) if cache is not None else {}
    known = dict(cached)
    missing = [i for i, k in enumerate(keys) if k not in known]
    dim = None
    with progress.task(description, total=len(texts)) as task:
        task.advance(len(texts) - len(missing))
        for start in range(0, len(missing), chunk_size):
            idx = missing[start : start + chunk_size]
            with counting(task, len(idx)) as done:  # an embedder that reports its batches moves the bar per batch
                vectors = embedder.encode_counting([texts[i] for i in idx], done)
            dim = vectors.shape[1]
            chunk_keys = [keys[i] for i in idx]
            if cache is not None:
                cache.put_many(chunk_keys, vectors)
            known.update(zip(chunk_keys, vectors))
    if cache is not None:
        _replace_unsound(embedder, texts, keys, cached, known, cache, dim)
        if cache.damaged_rows > damaged_before:
            logger.warning("%d damaged rows in the embedding cache %s were not vectors of %s; they were embedded "
                           "again and stored over the damaged ones", cache.damaged_rows - damaged_before, cache.path,
                           embedder.name)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.ascontiguousarray(np.stack([known[k] for k in keys]), dtype=np.float32)


def _replace_unsound(embedder: Embedder, texts: list[str], keys: list[str], cached: dict[str, np.ndarray],
                     known: dict[str, np.ndarray], cache: EmbeddingCache, dim: int | None) -> None:
    """Embed again the cached vectors that are not vectors of ``embedder``, in ``known`` and in the cache.

    A vector must have the dimension of the ones just computed (or, when none
    was, the most common one among those read), finite values and unit norm.
    """
    if not cached:
        return
    if dim is None:
        sizes, counts = np.unique([len(v) for v in cached.values()], return_counts=True)
        dim = int(sizes[np.argmax(counts)])
    unsound = {k for k, v in cached.items() if not _sound(v, dim)}
    if not unsound:
        return
    cache.damaged_rows += len(unsound)
    first = {k: i for i, k in reversed(list(enumerate(keys)))}  # a text repeated in ``texts`` is embedded once
    redo = sorted(first[k] for k in unsound)
    vectors = embedder.encode([texts[i] for i in redo])
    redo_keys = [keys[i] for i in redo]
    cache.put_many(redo_keys, vectors)
    known.update(zip(redo_keys, vectors))


def _sound(vector: np.ndarray, dim: int) -> bool:
    """Whether a cached vector is one an embedder gives: ``dim`` finite values of unit norm."""
    if len(vector) != dim or not np.isfinite(vector).all():
        return False
    return bool(abs(float(np.linalg.norm(vector)) - 1.0) <= 1e-3)

"""On-disk embedding cache keyed by (model name, text hash).

SQLite in WAL mode: each committed chunk survives a kill, so an embedding
stage that dies halfway resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np

from equal.embedding.base import Embedder
from equal.progress import NullProgress, Progress


def text_key(model_name: str, text: str) -> str:
    return hashlib.sha256(f"{model_name}\x00{text}".encode()).hexdigest()


class EmbeddingCache:
    """Vectors stored by key in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB)")

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, keys: list[str], vectors: np.ndarray) -> None:
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def close(self) -> None:
        self._db.close()


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
            vectors = embedder.encode([texts[i] for i in idx])
            chunk_keys = [keys[i] for i in idx]
            if cache is not None:
                cache.put_many(chunk_keys, vectors)
            known.update(zip(chunk_keys, vectors))
            task.advance(len(idx))
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.ascontiguousarray(np.stack([known[k] for k in keys]), dtype=np.float32)

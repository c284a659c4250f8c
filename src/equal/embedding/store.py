"""Document embeddings in one memory-mapped ``.npy`` file, filled in corpus order and resumable.

A million 384-d vectors are 1.5 GB: they stay on disk and are paged in as
k-means and the bandit read them. The embed stage writes chunk after chunk
and records how far it got in a JSON sidecar after each one, so a killed
run continues from the last finished chunk. The file name holds a
fingerprint of the model and the texts, so another corpus or model never
reads stale vectors, and runs that share ``extraction.cache_dir`` share it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from equal.embedding.base import Embedder
from equal.files import atomic_write_text
from equal.progress import NullProgress, Progress


def fingerprint(model_name: str, texts: list[str]) -> str:
    """A hash of the model name and every text, in order."""
    digest = hashlib.blake2b(model_name.encode(), digest_size=16)
    for text in texts:
        digest.update(b"\x00")
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def store_path(directory: Path, model_name: str, texts: list[str]) -> Path:
    return directory / f"documents-{fingerprint(model_name, texts)}.npy"


def embed_to_store(embedder: Embedder, texts: list[str], path: Path, *, chunk_size: int = 4096,
                   progress: Progress | None = None, description: str = "embedding") -> np.ndarray:
    """Embed ``texts`` into the memory-mapped file ``path`` (resuming a partial one).

    Returns the vectors as a read-only memory map, ``(len(texts), dim)`` float32.
    Each chunk goes to the encoder in one call, so sentence-transformers sorts it
    by length and pads each batch to its longest text only.
    """
    progress = progress or NullProgress()
    meta_path = path.with_suffix(".json")
    n = len(texts)
    done = 0
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and path.exists() else None
    if meta is not None and meta.get("n") == n:
        done = int(meta["done"])
    with progress.task(description, total=n) as task:
        task.advance(done)
        store: np.memmap | None = None
        for start in range(done, n, chunk_size):
            vectors = embedder.encode(texts[start:start + chunk_size])
            if store is None:
                if start == 0:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    store = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, vectors.shape[1]))
                else:
                    store = np.load(path, mmap_mode="r+")
            store[start:start + len(vectors)] = vectors
            store.flush()  # the vectors reach the disk before the sidecar says they are there
            atomic_write_text(meta_path, json.dumps({"n": n, "dim": int(vectors.shape[1]),
                                                     "done": start + len(vectors)}))
            task.advance(len(vectors))
        del store
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.load(path, mmap_mode="r")

"""Embedding on a Ray cluster: Ray Data ``map_batches`` over a pool of embedder actors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from equal.distributed.cluster import connect
from equal.embedding.base import Embedder
from equal.progress import ItemsDone, ignore_items


class _EmbedBatch:
    """A Ray Data actor: builds its embedder once, then embeds batch after batch."""

    def __init__(self, factory: Callable[[], Embedder]) -> None:
        self.embedder = factory()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        vectors = self.embedder.encode([str(t) for t in batch["text"]])
        return {"row": batch["row"], "vector": list(vectors)}


class RayEmbedder:
    """The embedder that ``factory`` builds, run by ``workers`` actors on the cluster.

    It has the local embedder's ``name``: the vectors are the same, so caches and
    stores are shared with local runs.
    """

    def __init__(self, factory: Callable[[], Embedder], name: str, *, address: str | None = None,
                 workers: int = 2, batch_size: int = 256, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0) -> None:
        self.factory = factory
        self.name = name
        self.address = address
        self.workers = workers
        self.batch_size = batch_size
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encode_counting(texts, ignore_items)

    def encode_counting(self, texts: list[str], done: ItemsDone) -> np.ndarray:
        """The vectors, each text reported to ``done`` as its row comes back from the cluster."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        ray = connect(self.address)
        dataset = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)])
        embedded = dataset.map_batches(
            _EmbedBatch, fn_constructor_kwargs={"factory": self.factory}, batch_size=self.batch_size,
            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker,
        )
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for row in embedded.iter_rows():  # blocks arrive in any order: place each row by its index
            vector = np.asarray(row["vector"], dtype=np.float32)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), len(vector)), dtype=np.float32)
            out[int(row["row"])] = vector
            done(1)
        return out

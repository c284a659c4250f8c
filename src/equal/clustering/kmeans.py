"""faiss k-means as a scikit-learn style estimator."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from equal.errors import ConfigError

logger = logging.getLogger(__name__)


def default_n_clusters(n_documents: int) -> int:
    """A k for ``n`` documents: ``sqrt(n / 2)`` clipped to [2, 1000].

    Gives 17 clusters for 600 documents and 1000 (the released setting) for
    2M documents and more.
    """
    return int(min(1000, max(2, round(math.sqrt(n_documents / 2)))))


class KMeansClusterer:
    """k-means on unit vectors with faiss; GPU when ``use_gpu`` and one is present.

    Args:
        n_clusters: k.
        n_iter: Lloyd iterations (released scripts: 500).
        n_init: independent restarts; the best (lowest inertia) is kept.
        random_state: seed of the centroid initialisation.
        use_gpu: ``"auto"``, ``True`` or ``False``.
        max_train_points: fit on a seeded sample of at most this many vectors (all when unset);
            every vector is then assigned to its nearest centroid.
        assign_batch: vectors assigned per faiss search, so a memory-mapped corpus is read in slices.

    Attributes:
        centroids_: ``(k, d)`` float32.
        labels_: ``(n,)`` int64, the nearest centroid of each training vector.
        inertia_: final sum of squared distances.
    """

    def __init__(self, n_clusters: int = 100, *, n_iter: int = 50, n_init: int = 1, random_state: int = 42,
                 use_gpu: bool | str = "auto", max_train_points: int | None = None,
                 assign_batch: int = 65_536) -> None:
        self.n_clusters = n_clusters
        self.max_train_points = max_train_points
        self.assign_batch = assign_batch
        self.n_iter = n_iter
        self.n_init = n_init
        self.random_state = random_state
        self.use_gpu = use_gpu

    def fit(self, x: np.ndarray) -> KMeansClusterer:
        """Fit on ``x``: ``(n, d)`` float32. Returns self."""
        import faiss

        n, d = x.shape
        if self.n_clusters < 1:
            raise ConfigError("clustering.k must be at least 1")
        if n < self.n_clusters:
            raise ConfigError(
                f"the corpus has {n} documents, fewer than clustering.k = {self.n_clusters}; "
                "lower clustering.k or set it to auto"
            )
        gpu = faiss.get_num_gpus() > 0 if self.use_gpu == "auto" else bool(self.use_gpu)
        kmeans = faiss.Kmeans(
            d, self.n_clusters, niter=self.n_iter, nredo=self.n_init, seed=self.random_state, gpu=gpu,
            verbose=False, min_points_per_centroid=1, max_points_per_centroid=100_000,
        )
        if self.max_train_points is not None and n > self.max_train_points:
            # a large corpus: fit on a seeded uniform sample (NeMo Curator's fit fraction idea),
            # then assign every vector; sorted indices keep reads from a memory map sequential
            rows = np.sort(np.random.default_rng(self.random_state).choice(n, self.max_train_points, replace=False))
            sample = np.ascontiguousarray(x[rows], dtype=np.float32)
        else:
            sample = np.ascontiguousarray(x, dtype=np.float32)
        kmeans.train(sample)
        self.centroids_ = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
        self.labels_, distances = self._assign(x, kmeans.index)
        self.inertia_ = float(distances.sum())
        logger.info("k-means: %d vectors (fit on %d) into %d clusters, inertia %.3f", n, len(sample),
                    self.n_clusters, self.inertia_)
        return self

    def _assign(self, x: np.ndarray, index: Any) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid and squared distance of every row, a batch at a time."""
        labels = np.empty(len(x), dtype=np.int64)
        distances = np.empty(len(x), dtype=np.float32)
        for start in range(0, len(x), self.assign_batch):
            batch = np.ascontiguousarray(x[start:start + self.assign_batch], dtype=np.float32)
            d, i = index.search(batch, 1)
            labels[start:start + len(batch)] = i[:, 0]
            distances[start:start + len(batch)] = d[:, 0]
        return labels, distances

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid of each row of ``x``: ``(n,)`` int64."""
        import faiss

        index = faiss.IndexFlatL2(self.centroids_.shape[1])
        index.add(self.centroids_)
        return self._assign(x, index)[0]

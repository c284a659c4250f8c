"""The clusters the bandit plays on: k-means over the document vectors and the W2 neighbour graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from equal.clustering import KMeansClusterer, cluster_moments, default_n_clusters, neighbour_lists, w2_diag_distances
from equal.config import ClusteringConfig
from equal.progress import Progress
from equal.stats import Stats


@dataclass(frozen=True, slots=True)
class Clusters:
    """A partition of the corpus into arms.

    Attributes:
        k: the number of clusters.
        labels: ``(n,)`` int64, each document's cluster.
        centroids: ``(k, d)`` float32.
        neighbours: per cluster, the clusters sharing its rewards (itself included).
    """

    k: int
    labels: np.ndarray
    centroids: np.ndarray
    neighbours: list[np.ndarray]

    @classmethod
    def whole(cls, vectors: np.ndarray) -> Clusters:
        """One cluster that holds every document: the arm of the random-documents baseline."""
        return cls(1, np.zeros(len(vectors), dtype=np.int64), vectors.mean(0, keepdims=True), [np.array([0])])


def cluster_documents(vectors: np.ndarray, config: ClusteringConfig, seed: int, progress: Progress,
                      stats: Stats) -> Clusters:
    """k-means (``clustering.k``, default ``sqrt(n/2)``) and the neighbour graph of its clusters.

    Args:
        vectors: ``(n, d)`` float32, the document vectors.
        config: ``clustering.*``.
        seed: seeds k-means.
    """
    k = default_n_clusters(len(vectors)) if config.k == "auto" else int(config.k)
    with progress.task(f"k-means, k={k}", total=None):
        km = KMeansClusterer(k, n_iter=config.iterations, random_state=seed,
                             max_train_points=config.max_train_points).fit(vectors)
    mu, sigma = cluster_moments(vectors, km.labels_, k)
    neighbours = neighbour_lists(w2_diag_distances(mu, sigma), threshold=config.neighbour_threshold,
                                 quantile=config.neighbour_quantile)
    stats.inc("clusters", k)
    return Clusters(k, km.labels_, km.centroids_, neighbours)

"""Distances between clusters and the neighbour graph used to share rewards.

Each cluster is summarised as a diagonal Gaussian (mean mu_i, per-dimension
variance sigma_i^2). The squared 2-Wasserstein distance between two such
Gaussians is::

    d_ij = ||mu_i - mu_j||^2 + sum_k (sigma_ik - sigma_jk)^2

which is what the released script computes (see docs/algorithm.md).
"""

from __future__ import annotations

import numpy as np

from equal.errors import ConfigError


def cluster_moments(x: np.ndarray, labels: np.ndarray, n_clusters: int,
                    chunk_size: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster mean and standard deviation.

    Args:
        x: ``(n, d)`` float32 embeddings.
        labels: ``(n,)`` cluster of each row.
        n_clusters: K.
        chunk_size: rows read at a time.

    Returns:
        ``(mu, sigma)``, each ``(K, d)`` float64; empty clusters get zeros.
    """
    from scipy.sparse import csr_matrix

    d = x.shape[1]
    counts = np.bincount(labels, minlength=n_clusters).astype(np.float64)
    sums = np.zeros((n_clusters, d))
    sq = np.zeros((n_clusters, d))
    # chunk by chunk (x may be a memory map of millions of rows): a sparse one-hot (K, chunk)
    # matrix times the chunk sums each cluster's rows in one BLAS-backed product
    for start in range(0, len(x), chunk_size):
        xc = np.asarray(x[start:start + chunk_size], dtype=np.float64)
        lc = labels[start:start + chunk_size]
        onehot = csr_matrix((np.ones(len(lc)), (lc, np.arange(len(lc)))), shape=(n_clusters, len(lc)))
        sums += onehot @ xc
        sq += onehot @ (xc * xc)
    safe = np.maximum(counts, 1.0)[:, None]
    mu = sums / safe
    var = np.maximum(sq / safe - mu * mu, 0.0)
    return mu, np.sqrt(var)


def w2_diag_distances(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Squared W2 distances between diagonal Gaussians, ``(K, K)``; O(K^2 d), vectorised."""
    def sq_dists(a: np.ndarray) -> np.ndarray:
        norms = (a * a).sum(1)
        return np.maximum(norms[:, None] + norms[None, :] - 2 * a @ a.T, 0.0)

    dist = sq_dists(mu) + sq_dists(sigma)
    np.fill_diagonal(dist, 0.0)
    return dist


def neighbour_lists(distances: np.ndarray, *, threshold: float | None = None,
                    quantile: float | None = None) -> list[np.ndarray]:
    """Neighbours of each cluster: those with ``d_ij < threshold``, itself always included.

    Give either an absolute ``threshold`` (released: 0.2 for bge-base) or a
    ``quantile`` in [0, 1] of the off-diagonal distances, which adapts to the
    embedder's scale.
    """
    if (threshold is None) == (quantile is None):
        raise ConfigError("set exactly one of clustering.neighbour_threshold and clustering.neighbour_quantile")
    k = distances.shape[0]
    if quantile is not None:
        if not 0.0 <= quantile <= 1.0:
            raise ConfigError("clustering.neighbour_quantile must lie in [0, 1]")
        off = distances[~np.eye(k, dtype=bool)]
        threshold = float(np.quantile(off, quantile)) if off.size and quantile > 0 else -np.inf
    mask = distances < threshold
    np.fill_diagonal(mask, True)
    return [np.flatnonzero(row) for row in mask]

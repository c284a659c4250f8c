"""The order in which a cluster's documents are pulled (``bandit.document_order``).

The bandit decides which cluster pays, from rewards; inside a cluster the
order is free. ``random`` is the paper's seeded random order; ``centroid``
takes the documents nearest the cluster's centroid first; ``reference`` (the
default) the documents most similar to the reference centroid first, the
likeliest on-task documents at no LLM cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from equal.errors import ConfigError


@dataclass(frozen=True, slots=True)
class OrderContext:
    """What an order may look at.

    Attributes:
        vectors: ``(n, d)`` float32, the document embeddings the clusters were made from.
        centroids: ``(k, d)`` float32, the cluster centroids.
        similarity: ``(n,)`` float, each document's cosine similarity to the reference centroid.
    """

    vectors: np.ndarray
    centroids: np.ndarray
    similarity: np.ndarray


# (a cluster's document indices, the cluster, the context, the run's generator) -> the indices in pull order
DocumentOrder = Callable[[np.ndarray, int, OrderContext, np.random.Generator], np.ndarray]


def _random(idx: np.ndarray, cluster: int, context: OrderContext, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(idx)


def _centroid(idx: np.ndarray, cluster: int, context: OrderContext, rng: np.random.Generator) -> np.ndarray:
    distance = ((context.vectors[idx] - context.centroids[cluster]) ** 2).sum(1)
    return idx[np.argsort(distance, kind="stable")]


def _reference(idx: np.ndarray, cluster: int, context: OrderContext, rng: np.random.Generator) -> np.ndarray:
    return idx[np.argsort(-context.similarity[idx], kind="stable")]


DOCUMENT_ORDERS: dict[str, DocumentOrder] = {"random": _random, "centroid": _centroid, "reference": _reference}


def cluster_members(labels: np.ndarray, k: int, taken: Sequence[int], order: str, context: OrderContext,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Each cluster's documents not yet ``taken``, in the pull order ``order`` (see :data:`DOCUMENT_ORDERS`).

    Args:
        labels: ``(n,)`` int, each document's cluster in ``[0, k)``.
        k: the number of clusters.
        taken: document indices already extracted (the warm-up's).
        order: a key of :data:`DOCUMENT_ORDERS`.
        context: what the order may look at.
        rng: the run's generator (``random`` draws from it, cluster by cluster).

    Raises:
        ConfigError: ``order`` is not a known order.
    """
    arrange = DOCUMENT_ORDERS.get(order)
    if arrange is None:
        raise ConfigError(f"bandit.document_order must be one of {sorted(DOCUMENT_ORDERS)}, not {order!r}")
    open_docs = np.ones(len(labels), dtype=bool)
    open_docs[list(taken)] = False
    by_label = np.argsort(labels, kind="stable")
    by_label = by_label[open_docs[by_label]]
    groups = np.split(by_label, np.cumsum(np.bincount(labels[by_label], minlength=k))[:-1])
    return [arrange(idx, c, context, rng) if len(idx) else idx for c, idx in enumerate(groups)]

"""What EQUAL adds to the paper's bandit before and between pulls, at no LLM cost.

- :func:`similarity_prior`: one pseudo-reward per cluster from how close its
  documents lie to the reference centroid (``bandit.similarity_prior``);
- :func:`warmup_prior`: the warm-up documents of each cluster rewarded
  together, shared like a pull's without counting as one (``warmup.as_prior``);
- :func:`resolve_alpha`: ``bandit.alpha: auto``, the spread of the warm-up rewards;
- :func:`empty_pull_reward`: what a pull that gave no pair earns.

The paper starts every cluster at 0 and learns from pulls alone; these are
measured in ``docs/selection.md`` and ``docs/benchmarks.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from equal.bandit.arms import ClusterArms
from equal.records import QAPair

DEFAULT_SPREAD = 0.05  # the reward spread assumed when the warm-up gives fewer than two rewards


def resolve_alpha(setting: float | str, warm_rewards: Sequence[float]) -> float:
    """``bandit.alpha``, or with ``auto`` the std of the warm-up rewards: an exploration bonus in reward units.

    ``auto`` falls back to 0.05 when there are fewer than two warm-up rewards or they are all equal.
    """
    if setting != "auto":
        return float(setting)
    spread = float(np.std(warm_rewards)) if len(warm_rewards) >= 2 else 0.0
    return spread if spread > 0 else DEFAULT_SPREAD


def similarity_prior(arms: ClusterArms, labels: np.ndarray, similarity: np.ndarray,
                     warm_rewards: Sequence[float]) -> None:
    """Give each cluster one pseudo-reward (not shared) from its documents' similarity to the reference.

    The clusters' mean similarities are standardised over the clusters that
    hold documents and scaled by the std of the warm-up rewards, so a cluster of
    on-task documents starts above an unexplored one and an off-task cluster
    below, before any LLM call. Nothing is added when fewer than two clusters
    hold documents or their similarities are all equal.

    Args:
        arms: the clusters, ``k`` of them.
        labels: ``(n,)`` int, each document's cluster.
        similarity: ``(n,)`` float, each document's cosine similarity to the reference centroid.
        warm_rewards: the rewards of the warm-up's pseudo-pulls.
    """
    k = arms.n_arms
    counts = np.bincount(labels, minlength=k)
    sims = np.bincount(labels, weights=similarity, minlength=k) / np.maximum(counts, 1)
    present = counts > 0
    if present.sum() < 2 or sims[present].std() == 0:
        return
    z = (sims - sims[present].mean()) / sims[present].std()
    scale = float(np.std(warm_rewards)) if len(warm_rewards) >= 2 else DEFAULT_SPREAD
    for c in np.flatnonzero(present):
        arms.add_prior(int(c), float(z[c]) * scale)


def warmup_prior(arms: ClusterArms, labels: np.ndarray, documents: Sequence[int],
                 pairs: Sequence[Sequence[QAPair]], reward: Callable[[list[QAPair]], float | None]) -> int:
    """Credit each cluster holding warm-up documents with the reward of their pairs, shared as a pull's.

    It updates the rewards of the cluster and its neighbours, not their pull
    counts. A cluster whose warm-up documents gave no pair gets nothing.

    Args:
        arms: the clusters.
        labels: ``(n,)`` int, each document's cluster.
        documents: the warm-up's document indices.
        pairs: the pairs of each of those documents.
        reward: the reward of a set of pairs, ``None`` for an empty one.

    Returns:
        How many clusters were credited.
    """
    by_cluster: dict[int, list[QAPair]] = {}
    for i, its_pairs in zip(documents, pairs):
        by_cluster.setdefault(int(labels[i]), []).extend(its_pairs)
    credited = 0
    for cluster, cluster_pairs in sorted(by_cluster.items()):
        value = reward(cluster_pairs)
        if value is not None:
            arms.share(cluster, value, pulled=False)
            credited += 1
    return credited


def empty_pull_reward(seen: Sequence[float]) -> float:
    """The reward of a pull that gave no pair: the lowest reward seen so far, or -1 before any.

    (The released script crashes on such a pull.)
    """
    return min(seen) if seen else -1.0

"""Selection strategies: how a run picks the documents it pays for (``bandit.selection``).

Every strategy spends the same budget through the same extraction, reward
and rounds, so comparing two runs measures the selection alone. A strategy
decides the warm-up's sample, whether the embedder is aligned, the arms (and
the order of documents in them), the priors, the round shape and the policy:

- ``equal``: EQUAL as configured (``warmup.*``, ``alignment.enabled``,
  ``bandit.*``): k-means clusters, similarity-led warm-up and order, priors;
- ``paper``: the paper's EQUAL: a random warm-up, random order inside a
  cluster, no priors, the released alpha 0.001 (the rest as configured);
- ``random-clusters``: the paper's settings with clusters drawn uniformly at
  random instead of by UCB;
- ``random``: random documents from the whole corpus: a random warm-up, then
  one arm that holds every document in seeded random order, one pull of m
  documents a round.

The keys a strategy sets itself are declared beside ``bandit.selection`` in
:data:`equal.config.SELECTION_SETTINGS`, where a config that sets one of them
otherwise is refused (``paper``, ``random-clusters``) or warned about
(``random``), and each strategy here is made from the config with those keys
set (:func:`with_settings`): a strategy cannot take a value it does not declare.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from equal.bandit import (
    ClusterArms,
    OrderContext,
    Policy,
    RoundShape,
    build_policy,
    cluster_members,
    resolve_alpha,
    round_shape,
    similarity_prior,
    warmup_prior,
)
from equal.config import SELECTION_SETTINGS, BanditConfig, ClusteringConfig, RunConfig
from equal.errors import ConfigError
from equal.progress import Progress
from equal.records import QAPair
from equal.run.clusters import Clusters, cluster_documents
from equal.stats import Stats


class SelectionStrategy(Protocol):
    """What differs between selection strategies; see the module's docstring for each.

    Attributes:
        warmup: ``warmup.selection`` as this strategy applies it.
        aligns: whether the embedder is aligned on the warm-up before clustering.
    """

    @property
    def warmup(self) -> str: ...

    @property
    def aligns(self) -> bool: ...

    def clusters(self, vectors: np.ndarray, progress: Progress, stats: Stats) -> Clusters:
        """The partition of the corpus into arms; ``vectors`` ``(n, d)``."""
        ...

    def shape(self, documents: int, clusters: Clusters) -> RoundShape:
        """The round shape for ``documents`` left to spend after the warm-up."""
        ...

    def arms(self, clusters: Clusters, context: OrderContext, taken: Sequence[int],
             rng: np.random.Generator) -> ClusterArms:
        """Each arm's documents not ``taken`` by the warm-up, in pull order."""
        ...

    def prime(self, arms: ClusterArms, clusters: Clusters, similarity: np.ndarray, warm_rewards: Sequence[float],
              warm_documents: Sequence[int], warm_pairs: Sequence[Sequence[QAPair]],
              reward: Callable[[list[QAPair]], float | None]) -> int:
        """Give the arms what is known before the first pull; returns the clusters credited by the warm-up."""
        ...

    def alpha(self, warm_rewards: Sequence[float]) -> float:
        """The exploration weight, reported in the run's summary."""
        ...

    def policy(self, alpha: float) -> Policy:
        ...


@dataclass(frozen=True, slots=True)
class ClusterBandit:
    """A bandit over k-means clusters: ``equal``, ``paper`` and ``random-clusters``.

    Attributes:
        warmup: which documents the warm-up extracts (``random``, ``reference``, ``mixed``).
        aligns: align the embedder on the warm-up before clustering.
        document_order: a key of :data:`equal.bandit.DOCUMENT_ORDERS`.
        similarity_prior: start each cluster from its similarity to the reference.
        warmup_prior: credit each cluster with the reward of its warm-up documents.
        policy_name: a key of :data:`equal.bandit.POLICIES`.
        alpha_setting: the exploration weight, or ``auto``.
        bandit: ``bandit.*`` (round shape, alpha schedule).
        clustering: ``clustering.*``.
        seed: seeds k-means.
    """

    warmup: str
    aligns: bool
    document_order: str
    similarity_prior: bool
    warmup_prior: bool
    policy_name: str
    alpha_setting: float | str
    bandit: BanditConfig
    clustering: ClusteringConfig
    seed: int

    def clusters(self, vectors: np.ndarray, progress: Progress, stats: Stats) -> Clusters:
        return cluster_documents(vectors, self.clustering, self.seed, progress, stats)

    def shape(self, documents: int, clusters: Clusters) -> RoundShape:
        return round_shape(documents, clusters.k, self.bandit.clusters_per_round, self.bandit.docs_per_pull)

    def arms(self, clusters: Clusters, context: OrderContext, taken: Sequence[int],
             rng: np.random.Generator) -> ClusterArms:
        members = cluster_members(clusters.labels, clusters.k, taken, self.document_order, context, rng)
        return ClusterArms(members, clusters.neighbours)

    def prime(self, arms: ClusterArms, clusters: Clusters, similarity: np.ndarray, warm_rewards: Sequence[float],
              warm_documents: Sequence[int], warm_pairs: Sequence[Sequence[QAPair]],
              reward: Callable[[list[QAPair]], float | None]) -> int:
        if self.similarity_prior:
            similarity_prior(arms, clusters.labels, similarity, warm_rewards)
        if not self.warmup_prior:
            return 0
        return warmup_prior(arms, clusters.labels, warm_documents, warm_pairs, reward)

    def alpha(self, warm_rewards: Sequence[float]) -> float:
        return resolve_alpha(self.alpha_setting, warm_rewards)

    def policy(self, alpha: float) -> Policy:
        return build_policy(self.policy_name, alpha, self.bandit.alpha_schedule)


@dataclass(frozen=True, slots=True)
class RandomDocuments:
    """Random documents from the whole corpus at the same budget: the baseline.

    One arm holds every document not in the warm-up, in seeded random order;
    a round is one pull of m documents (m as EQUAL's round shape gives it).
    ``alpha`` is resolved as configured, only to be reported. Made from the
    config with the keys ``random`` sets (:func:`with_settings`): a random
    warm-up, no alignment, random order, the uniform policy.
    """

    alpha_setting: float | str
    bandit: BanditConfig
    warmup: str
    aligns: bool

    def clusters(self, vectors: np.ndarray, progress: Progress, stats: Stats) -> Clusters:
        return Clusters.whole(vectors)

    def shape(self, documents: int, clusters: Clusters) -> RoundShape:
        return round_shape(documents, 1, self.bandit.clusters_per_round, self.bandit.docs_per_pull)

    def arms(self, clusters: Clusters, context: OrderContext, taken: Sequence[int],
             rng: np.random.Generator) -> ClusterArms:
        return ClusterArms(cluster_members(clusters.labels, 1, taken, self.bandit.document_order, context, rng),
                           clusters.neighbours)

    def prime(self, arms: ClusterArms, clusters: Clusters, similarity: np.ndarray, warm_rewards: Sequence[float],
              warm_documents: Sequence[int], warm_pairs: Sequence[Sequence[QAPair]],
              reward: Callable[[list[QAPair]], float | None]) -> int:
        return 0

    def alpha(self, warm_rewards: Sequence[float]) -> float:
        return resolve_alpha(self.alpha_setting, warm_rewards)

    def policy(self, alpha: float) -> Policy:
        return build_policy(self.bandit.policy)  # uniform; with one arm, every policy picks it


def with_settings(config: RunConfig, selection: str) -> RunConfig:
    """``config`` with the keys ``selection`` sets itself set to its values (``SELECTION_SETTINGS``)."""
    return SELECTION_SETTINGS[selection].apply(config)


def _equal(config: RunConfig) -> SelectionStrategy:
    return ClusterBandit(config.warmup.selection, config.alignment.enabled, config.bandit.document_order,
                         config.bandit.similarity_prior, config.warmup.as_prior, config.bandit.policy,
                         config.bandit.alpha, config.bandit, config.clustering, config.seed)


def _paper(config: RunConfig) -> SelectionStrategy:
    return _equal(with_settings(config, "paper"))


def _random_clusters(config: RunConfig) -> SelectionStrategy:
    return _equal(with_settings(config, "random-clusters"))


def _random_documents(config: RunConfig) -> SelectionStrategy:
    config = with_settings(config, "random")
    return RandomDocuments(config.bandit.alpha, config.bandit, config.warmup.selection, config.alignment.enabled)


STRATEGIES: dict[str, Callable[[RunConfig], SelectionStrategy]] = {
    "equal": _equal,
    "paper": _paper,
    "random-clusters": _random_clusters,
    "random": _random_documents,
}
"""Every selection strategy by its ``bandit.selection`` name, made from the run's config."""


def build_strategy(config: RunConfig) -> SelectionStrategy:
    """The strategy ``config.bandit.selection`` names.

    Raises:
        ConfigError: no strategy has that name.
    """
    make = STRATEGIES.get(config.bandit.selection)
    if make is None:
        raise ConfigError(f"bandit.selection must be one of {sorted(STRATEGIES)}, not {config.bandit.selection!r}")
    return make(config)

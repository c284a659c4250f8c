"""The OT distance of a set of pairs to the reference set, in the run's reward space (rewards: run/rewards.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from equal.config import RewardConfig
from equal.embedding import EmbeddingCache
from equal.progress import Progress
from equal.records import QAPair
from equal.reward import ot_distance
from equal.run.embedders import EmbeddingSpace, embed_texts
from equal.stats import Stats


@dataclass(frozen=True, slots=True)
class PairDistance:
    """The OT distance ``W`` between a set of pairs and the reference set, in one embedding space.

    Args:
        space: the reward embedder and the reference vectors ``(r, d)``.
        cache: the embedding cache the pairs go through.
        config: ``reward.*`` (cost, solver, Sinkhorn regularisation).
        progress: where large batches report.
        stats: where the seconds of ``reward/embed pairs`` and ``reward/ot`` add up.
    """

    space: EmbeddingSpace
    cache: EmbeddingCache
    config: RewardConfig
    progress: Progress
    stats: Stats = field(default_factory=Stats)

    def vectors(self, pairs: list[QAPair]) -> np.ndarray:
        """The reward embedder's vectors of ``pairs`` ``(n, d)``, each embedded as ``Question: q\\nAnswer: a``."""
        with self.stats.timed("reward/embed pairs"):
            return embed_texts(self.space.embedders.reward, [p.as_text() for p in pairs], self.cache, self.progress,
                               "embedding pairs")

    def __call__(self, pairs: list[QAPair]) -> float | None:
        """``W`` of ``pairs`` (each embedded as ``Question: q\\nAnswer: a``); ``None`` for no pair."""
        if not pairs:
            return None
        x = self.vectors(pairs)
        with self.stats.timed("reward/ot"):
            return ot_distance(x, self.space.reference, cost=self.config.cost, solver=self.config.solver,
                               reg=self.config.sinkhorn_reg).value

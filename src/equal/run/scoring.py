"""Scoring pairs against the reference set: their OT distance, and the reward of each bandit pull."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from equal.bandit import empty_pull_reward
from equal.config import RewardConfig
from equal.embedding import EmbeddingCache
from equal.progress import Progress
from equal.records import QAPair
from equal.reward import ot_distance, reward_from_distance
from equal.run.embedders import EmbeddingSpace, embed_texts
from equal.run.rounds import PullScore
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

    def __call__(self, pairs: list[QAPair]) -> float | None:
        """``W`` of ``pairs`` (each embedded as ``Question: q\\nAnswer: a``); ``None`` for no pair."""
        if not pairs:
            return None
        with self.stats.timed("reward/embed pairs"):
            x = embed_texts(self.space.embedders.reward, [p.as_text() for p in pairs], self.cache, self.progress,
                            "embedding pairs")
        with self.stats.timed("reward/ot"):
            return ot_distance(x, self.space.reference, cost=self.config.cost, solver=self.config.solver,
                               reg=self.config.sinkhorn_reg).value

    def reward(self, offset: float) -> Callable[[list[QAPair]], float | None]:
        """The reward ``1 - W - offset`` of a set of pairs; ``None`` for no pair."""
        def score(pairs: list[QAPair]) -> float | None:
            distance = self(pairs)
            return None if distance is None else reward_from_distance(distance, offset)
        return score


class PullRewarder:
    """The reward of each bandit pull, in the order they are made.

    ``1 - W - offset``; a pull that gave no pair gets the lowest reward seen
    so far (warm-up included), counted as ``pulls_without_pairs``.

    Args:
        distance: the OT distance of a set of pairs (``None`` for none).
        offset: the calibrated reward offset.
        seen: the rewards already seen (the warm-up's).
        stats: where pulls without pairs are counted.
    """

    def __init__(self, distance: Callable[[list[QAPair]], float | None], offset: float, seen: Sequence[float],
                 stats: Stats) -> None:
        self._distance = distance
        self._offset = offset
        self._seen = list(seen)
        self._stats = stats

    def __call__(self, pairs: list[QAPair]) -> PullScore:
        distance = self._distance(pairs)
        if distance is None:
            reward = empty_pull_reward(self._seen)
            self._stats.inc("pulls_without_pairs")
        else:
            reward = reward_from_distance(distance, self._offset)
        self._seen.append(reward)
        return PullScore(distance, reward)


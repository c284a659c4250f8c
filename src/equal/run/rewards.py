"""The reward kinds of ``reward.kind``: what a pull's pairs are worth to the bandit.

Each kind rewards the warm-up's pseudo-pulls first (which also sets the offset, the
reward of an average random pull), then every bandit pull in the order they are made:

- ``closeness`` (EQUAL's): ``1 - W(P, R) - offset``, the OT distance ``W`` of the pull's
  pairs ``P`` to the reference ``R``;
- ``quality``: the same over the pairs the cheap checks grade at least
  ``reward.quality_grade`` (:mod:`equal.quality`), less ``reward.quality_penalty`` times
  the share of the pull's pairs graded below it. A pull whose pairs lean on their
  passage, copy the question or are empty scores below one whose pairs stand alone;
- ``coverage``: how much the pull's pairs lower the OT distance of a fixed-size sample of
  everything selected so far (:class:`equal.reward.CoverageGain`), less the offset.

A pull without (kept) pairs gets the lowest reward seen so far, as in EQUAL.
docs/reward.md has the definitions and the measurements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from equal.bandit import empty_pull_reward
from equal.config import RewardConfig
from equal.quality import ReferenceShape, grade
from equal.records import QAPair
from equal.reward import CoverageGain, calibrate_offset, ot_distance, quality_adjusted, reward_from_distance
from equal.run.rounds import PullScore
from equal.run.scoring import PairDistance
from equal.stats import Stats


@dataclass(frozen=True, slots=True)
class WarmScores:
    """The warm-up pseudo-pulls' distances (``None``: no pair) and rewards, and the offset they set."""

    distances: list[float | None]
    rewards: list[float]
    offset: float


class Reward(Protocol):
    """A reward kind: the warm-up's scores, then each pull's, in order."""

    def warm(self, chunks: Sequence[list[QAPair]], similar: int, offset_setting: float | str) -> WarmScores:
        """Score the warm-up's pseudo-pulls (the first ``similar`` chosen by similarity) and set the offset."""
        ...

    def __call__(self, pairs: list[QAPair]) -> PullScore:
        """The score of the next pull."""
        ...

    def prior(self, pairs: list[QAPair]) -> float | None:
        """What a set of warm-up pairs is worth as a cluster's prior (``None`` for none); changes nothing."""
        ...


class _Seen:
    """The rewards seen so far, for the reward of a pull without pairs."""

    def __init__(self, stats: Stats) -> None:
        self.rewards: list[float] = []
        self.stats = stats

    def empty(self) -> PullScore:
        reward = empty_pull_reward(self.rewards)
        self.stats.inc("pulls_without_pairs")
        self.rewards.append(reward)
        return PullScore(None, reward)

    def add(self, distance: float | None, reward: float) -> PullScore:
        self.rewards.append(reward)
        return PullScore(distance, reward)


class ClosenessReward:
    """EQUAL's reward, ``1 - W - offset``; with ``auto`` the offset gives the random warm-up pulls a mean of 0."""

    def __init__(self, distance: Callable[[list[QAPair]], float | None], stats: Stats) -> None:
        self.distance = distance
        self.offset = 0.0
        self._seen = _Seen(stats)

    def warm(self, chunks: Sequence[list[QAPair]], similar: int, offset_setting: float | str) -> WarmScores:
        distances = [self.distance(p) for p in chunks]
        self.offset = calibrate_offset(offset_setting, distances[similar:], distances[:similar])
        rewards = [0.0 if d is None else reward_from_distance(d, self.offset) for d in distances]
        self._seen.rewards = [r for r, d in zip(rewards, distances, strict=True) if d is not None]
        return WarmScores(distances, rewards, self.offset)

    def __call__(self, pairs: list[QAPair]) -> PullScore:
        distance = self.distance(pairs)
        if distance is None:
            return self._seen.empty()
        return self._seen.add(distance, reward_from_distance(distance, self.offset))

    def prior(self, pairs: list[QAPair]) -> float | None:
        distance = self.distance(pairs)
        return None if distance is None else reward_from_distance(distance, self.offset)


class QualityReward:
    """Closeness over the pairs graded at least ``threshold``, less ``penalty`` times the share graded below.

    Args:
        distance: the OT distance of a set of pairs to the reference.
        shape: what the cheap checks hold an answer's length against.
        threshold: the least grade a pair needs to count (1-5).
        penalty: what a pull loses when none of its pairs pass (in reward units).
    """

    def __init__(self, distance: Callable[[list[QAPair]], float | None], shape: ReferenceShape, stats: Stats, *,
                 threshold: int = 4, penalty: float = 0.1) -> None:
        self.distance = distance
        self.shape = shape
        self.threshold = threshold
        self.penalty = penalty
        self.offset = 0.0
        self._stats = stats
        self._seen = _Seen(stats)

    def _kept(self, pairs: list[QAPair]) -> list[QAPair]:
        return [p for p in pairs if grade(p, self.shape).grade >= self.threshold]

    def _score(self, pairs: list[QAPair]) -> tuple[float | None, float | None]:
        kept = self._kept(pairs)
        distance = self.distance(kept)
        if distance is None:
            return None, None
        return distance, quality_adjusted(reward_from_distance(distance, self.offset), len(kept) / len(pairs),
                                          self.penalty)

    def warm(self, chunks: Sequence[list[QAPair]], similar: int, offset_setting: float | str) -> WarmScores:
        distances = [self.distance(self._kept(p)) for p in chunks]
        self.offset = calibrate_offset(offset_setting, distances[similar:], distances[:similar])
        scores = [self._score(p) for p in chunks]
        rewards = [0.0 if r is None else r for _, r in scores]
        self._seen.rewards = [r for _, r in scores if r is not None]
        return WarmScores([d for d, _ in scores], rewards, self.offset)

    def __call__(self, pairs: list[QAPair]) -> PullScore:
        distance, reward = self._score(pairs)
        if distance is None or reward is None:
            if pairs:
                self._stats.inc("pulls_without_kept_pairs")
            return self._seen.empty()
        return self._seen.add(distance, reward)

    def prior(self, pairs: list[QAPair]) -> float | None:
        return self._score(pairs)[1] if pairs else None


class CoverageReward:
    """``W(B, R) - W(B + P, R) - offset`` against a fixed-size reservoir ``B`` of the pairs selected so far.

    The warm-up's pairs fill the reservoir first (in the warm-up's order); with ``auto`` the
    offset is the mean gain of its random pseudo-pulls, so reward 0 still means "as good as a
    random pull". The distance logged for a pull is its own ``W(P, R)``.
    """

    def __init__(self, vectors: Callable[[list[QAPair]], np.ndarray], reference: np.ndarray, config: RewardConfig,
                 seed: int, stats: Stats) -> None:
        self.vectors = vectors
        self.reference = reference
        self.config = config
        self.gains = CoverageGain(reference, size=config.coverage_sample, seed=seed, cost=config.cost,
                                  solver=config.solver, reg=config.sinkhorn_reg)
        self.offset = 0.0
        self._seen = _Seen(stats)

    def _distance(self, x: np.ndarray) -> float:
        return ot_distance(x, self.reference, cost=self.config.cost, solver=self.config.solver,
                           reg=self.config.sinkhorn_reg).value

    def warm(self, chunks: Sequence[list[QAPair]], similar: int, offset_setting: float | str) -> WarmScores:
        distances: list[float | None] = []
        gains: list[float | None] = []
        for pairs in chunks:
            if not pairs:
                distances.append(None)
                gains.append(None)
                continue
            x = self.vectors(pairs)
            distances.append(self._distance(x))
            gains.append(self.gains.gain(x))
            self.gains.add(x)
        random_gains = [g for g in gains[similar:] if g is not None] or [g for g in gains if g is not None]
        self.offset = float(offset_setting) if offset_setting != "auto" else \
            float(np.mean(random_gains)) if random_gains else 0.0
        rewards = [0.0 if g is None else g - self.offset for g in gains]
        self._seen.rewards = [r for r, g in zip(rewards, gains, strict=True) if g is not None]
        return WarmScores(distances, rewards, self.offset)

    def __call__(self, pairs: list[QAPair]) -> PullScore:
        if not pairs:
            return self._seen.empty()
        x = self.vectors(pairs)
        gain = self.gains.gain(x)
        self.gains.add(x)
        return self._seen.add(self._distance(x), gain - self.offset)

    def prior(self, pairs: list[QAPair]) -> float | None:
        return self.gains.gain(self.vectors(pairs)) - self.offset if pairs else None


def build_reward(config: RewardConfig, distance: PairDistance, reference: Sequence[QAPair], seed: int,
                 stats: Stats) -> Reward:
    """The reward of ``reward.kind``, in ``distance``'s embedding space."""
    if config.kind == "quality":
        return QualityReward(distance, ReferenceShape.of(reference), stats, threshold=config.quality_grade,
                             penalty=config.quality_penalty)
    if config.kind == "coverage":
        return CoverageReward(distance.vectors, distance.space.reference, config, seed, stats)
    return ClosenessReward(distance, stats)

"""Bandit policies: small validated objects that pick clusters from the arm state.

A policy only scores and selects; the rounds (:func:`equal.run.rounds.play_rounds`) pull,
extract and reward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from equal.bandit.arms import Arms
from equal.errors import ConfigError


class Policy(Protocol):
    def select(self, arms: Arms, n: int, rng: np.random.Generator) -> list[int]:
        """Up to ``n`` distinct available clusters to pull this round."""
        ...


class UCBPolicy:
    """UCB over clusters with neighbour-shared rewards.

    ``U_j = S_j / c_j + alpha * sqrt(2 ln N / (c_j + 1))``, with ``alpha``
    constant (released scripts: 0.001) or decaying as ``1 / (N + 1)`` (paper).
    With no reward seen yet (round 0) it picks clusters at random.
    """

    def __init__(self, alpha: float = 0.001, schedule: str = "constant") -> None:
        if alpha < 0:
            raise ConfigError("bandit.alpha must be >= 0")
        if schedule not in ("constant", "decaying"):
            raise ConfigError("bandit.alpha_schedule must be 'constant' or 'decaying'")
        self.alpha = alpha
        self.schedule = schedule

    def scores(self, arms: Arms) -> np.ndarray:
        """UCB score of every cluster, ``(K,)``."""
        n = max(arms.total, 1.0)
        alpha = self.alpha if self.schedule == "constant" else 1.0 / (arms.total + 1.0)
        return arms.mean_reward() + alpha * np.sqrt(2.0 * np.log(n) / (arms.count + 1.0))

    def select(self, arms: Arms, n: int, rng: np.random.Generator) -> list[int]:
        open_ = np.flatnonzero(arms.available())
        if len(open_) == 0:
            return []
        n = min(n, len(open_))
        if arms.total == 0:  # no information yet: random clusters
            return sorted(int(c) for c in rng.choice(open_, size=n, replace=False))
        scores = self.scores(arms)[open_]
        order = np.argsort(-scores, kind="stable")  # ties: lowest cluster id first
        return [int(c) for c in open_[order[:n]]]


class ThompsonPolicy:
    """Gaussian Thompson sampling over clusters with neighbour-shared rewards.

    Each round every open cluster draws ``theta_j ~ N(S_j / c_j, scale^2 / (c_j + 1))`` (mean 0
    for a cluster with no reward yet: as good as a random pull, by the reward's offset) and the
    ``n`` largest draws are pulled. Exploration comes from the spread of the draws, which
    shrinks as a cluster's count grows, not from a bonus: unlike UCB with the released
    ``alpha`` of 0.001 it keeps trying clusters whose mean is close to the best.
    ``scale`` is the prior standard deviation of a cluster's mean reward, in reward units
    (``bandit.alpha``; ``auto`` makes it the spread of the warm-up rewards).
    """

    def __init__(self, scale: float = 0.05) -> None:
        if not scale >= 0:
            raise ConfigError("bandit.alpha (Thompson's prior standard deviation) must be >= 0")
        self.scale = scale

    def select(self, arms: Arms, n: int, rng: np.random.Generator) -> list[int]:
        open_ = np.flatnonzero(arms.available())
        if len(open_) == 0:
            return []
        n = min(n, len(open_))
        spread = self.scale / np.sqrt(arms.count[open_] + 1.0)
        draws = arms.mean_reward()[open_] + spread * rng.standard_normal(len(open_))
        order = np.argsort(-draws, kind="stable")
        return [int(c) for c in open_[order[:n]]]


class UniformPolicy:
    """Random clusters, uniformly among those with documents left: the bandit-free baseline."""

    def select(self, arms: Arms, n: int, rng: np.random.Generator) -> list[int]:
        open_ = np.flatnonzero(arms.available())
        n = min(n, len(open_))
        return sorted(int(c) for c in rng.choice(open_, size=n, replace=False)) if n else []


PolicyFactory = Callable[[float, str], Policy]

POLICIES: dict[str, PolicyFactory] = {
    "ucb": lambda alpha, schedule: UCBPolicy(alpha=alpha, schedule=schedule),
    "uniform": lambda alpha, schedule: UniformPolicy(),  # no exploration weight: every open cluster is as likely
    "thompson": lambda alpha, schedule: ThompsonPolicy(scale=alpha),  # alpha: the draws' prior spread
}
"""Every policy by its ``bandit.policy`` name, made from ``(alpha, alpha_schedule)``."""


def build_policy(name: str, alpha: float = 0.001, schedule: str = "constant") -> Policy:
    """Make the policy registered as ``name`` in :data:`POLICIES`.

    Raises:
        ConfigError: no policy has that name, or its settings are invalid.
    """
    factory = POLICIES.get(name)
    if factory is None:
        raise ConfigError(f"bandit.policy must be one of {sorted(POLICIES)}, not {name!r}")
    return factory(alpha, schedule)

"""Arm state: what each cluster has earned and which of its documents are left."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Arms(Protocol):
    """What policies and the rounds use of the arm state; :class:`ClusterArms` is equal's implementation."""

    count: np.ndarray
    total: float

    def available(self) -> np.ndarray: ...

    def take(self, cluster: int, m: int) -> list[int]: ...

    def mean_reward(self) -> np.ndarray: ...

    def share(self, cluster: int, reward: float, *, pulled: bool = True) -> None: ...


class ClusterArms:
    """Per-cluster reward statistics and a cursor into each cluster's document list.

    Args:
        members: for each cluster, the document indices in the order they will
            be pulled.
        neighbours: for each cluster, the clusters that share its rewards
            (itself included).

    Attributes:
        reward_sum: ``S_j``, summed shared rewards, ``(K,)``.
        count: ``c_j``, number of shared rewards received, ``(K,)``.
        pulls: ``T_j``, pulls made of the cluster itself, ``(K,)``.
        cursor: documents already taken from each cluster, ``(K,)``.
        total: ``N``, the sum of all counts.
    """

    def __init__(self, members: Sequence[np.ndarray], neighbours: Sequence[np.ndarray]) -> None:
        if len(members) != len(neighbours):
            raise ValueError("members and neighbours must have one entry per cluster")
        self.members = [np.asarray(m, dtype=np.int64) for m in members]
        self.neighbours = [np.asarray(n, dtype=np.int64) for n in neighbours]
        k = len(self.members)
        self.sizes = np.array([len(m) for m in self.members], dtype=np.int64)
        self.reward_sum = np.zeros(k)
        self.count = np.zeros(k)
        self.pulls = np.zeros(k, dtype=np.int64)
        self.cursor = np.zeros(k, dtype=np.int64)
        self.total = 0.0

    @property
    def n_arms(self) -> int:
        return len(self.members)

    def available(self) -> np.ndarray:
        """Mask of clusters that still have documents to pull."""
        return self.cursor < self.sizes

    def remaining(self) -> int:
        return int((self.sizes - self.cursor).sum())

    def take(self, cluster: int, m: int) -> list[int]:
        """The next ``m`` documents of ``cluster`` (fewer when it runs out)."""
        start = int(self.cursor[cluster])
        docs = self.members[cluster][start : start + m]
        self.cursor[cluster] = start + len(docs)
        return [int(d) for d in docs]

    def mean_reward(self) -> np.ndarray:
        """``S_j / c_j``, 0 where ``c_j`` = 0."""
        return np.divide(self.reward_sum, self.count, out=np.zeros_like(self.reward_sum), where=self.count > 0)

    def add_prior(self, cluster: int, reward: float) -> None:
        """One pseudo-observation of ``reward`` for ``cluster`` alone (not shared, not a pull)."""
        self.reward_sum[cluster] += reward
        self.count[cluster] += 1
        self.total += 1

    def share(self, cluster: int, reward: float, *, pulled: bool = True) -> None:
        """Credit ``reward`` to ``cluster`` and, in full, to each of its neighbours.

        ``pulled=False`` records evidence that did not come from pulling the
        cluster (a warm-up prior): it updates the rewards, not ``pulls``.
        """
        if pulled:
            self.pulls[cluster] += 1
        for j in self.neighbours[cluster]:
            self.reward_sum[j] += reward
            self.count[j] += 1
            self.total += 1

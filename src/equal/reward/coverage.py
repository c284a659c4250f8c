"""The coverage reward: how much a pull's pairs lower the OT distance of what is selected so far.

The closeness reward ``1 - W(P, R) - offset`` scores a pull's pairs ``P`` alone against the
reference ``R``: the pull that repeats the topic nearest the reference wins every time.
Coverage scores what a pull adds to the selection instead:

    gain(P) = W(B, R) - W(B + P, R)

where ``B`` is a running sample of the pairs selected so far. A pull whose pairs sit
where the selection has nothing yet moves mass onto uncovered reference examples and
lowers the distance a lot; one that repeats a covered topic lowers it little; one off
the task raises it (a negative gain).

Why a sample, and of a fixed size: with ``B`` = everything selected, the same pairs add
less and less as the selection grows (one pull among a thousand pairs moves nothing), so
a cluster's early rewards would not be comparable with its late ones, and UCB would
mistake that drift for a worse cluster. A uniform reservoir sample of ``size`` pairs
keeps the weight of a new pull in ``B + P`` the same all run long. ``B`` still improves
as better pairs are selected, so gains shrink slowly; the offset is calibrated on the
warm-up like the closeness reward's, and documented with the measurements in
docs/reward.md.
"""

from __future__ import annotations

import numpy as np

from equal.reward.ot import ot_distance


class CoverageGain:
    """The marginal drop in OT distance a pull's pairs bring to a fixed-size sample of the selection.

    Args:
        reference: ``(m, d)`` float32, the reference set's vectors.
        size: pairs kept in the running sample ``B``.
        seed: seeds the reservoir, so a run's rewards are deterministic.
        cost, solver, reg: as ``reward.*`` (see :func:`equal.reward.ot_distance`).
    """

    def __init__(self, reference: np.ndarray, *, size: int = 64, seed: int = 0, cost: str = "cosine",
                 solver: str = "exact", reg: float = 0.05) -> None:
        if size < 1:
            raise ValueError("the coverage sample holds at least one pair")
        self.reference = np.ascontiguousarray(reference, dtype=np.float32)
        self.size = size
        self.cost, self.solver, self.reg = cost, solver, reg
        self._rng = np.random.default_rng(seed)
        self._sample = np.zeros((0, self.reference.shape[1]), dtype=np.float32)
        self._seen = 0  # pairs offered to the reservoir so far

    def _distance(self, x: np.ndarray) -> float:
        return ot_distance(x, self.reference, cost=self.cost, solver=self.solver, reg=self.reg).value

    def gain(self, pairs: np.ndarray) -> float:
        """``W(B, R) - W(B + P, R)`` for the pull's pair vectors ``pairs`` ``(n, d)``; ``B`` is not changed.

        With ``B`` still empty the baseline is the farthest a set can be, 1 for the cosine cost
        (2 for opposite vectors is not reached by sentence embeddings in practice), so the
        first gains rank pulls by closeness.
        """
        pairs = np.ascontiguousarray(pairs, dtype=np.float32)
        if len(pairs) == 0:
            raise ValueError("a pull without pairs has no coverage gain (it gets the empty pull's reward)")
        before = self._distance(self._sample) if len(self._sample) else 1.0
        return before - self._distance(np.concatenate([self._sample, pairs]))

    def add(self, pairs: np.ndarray) -> None:
        """Offer the pull's pairs to the reservoir (uniform over every pair offered so far)."""
        for vector in np.ascontiguousarray(pairs, dtype=np.float32):
            self._seen += 1
            if len(self._sample) < self.size:
                self._sample = np.concatenate([self._sample, vector[None]])
            else:
                slot = int(self._rng.integers(0, self._seen))
                if slot < self.size:
                    self._sample[slot] = vector

    @property
    def sample(self) -> np.ndarray:
        """The running sample ``B`` ``(<= size, d)``."""
        return self._sample.copy()

"""From an OT distance to a bandit reward."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def reward_from_distance(distance: float, offset: float) -> float:
    """``r = 1 - W - offset`` (released offset: 0.12).

    The offset is an exploration threshold: unexplored clusters score 0, so
    a cluster whose pairs lie closer than ``1 - offset`` ranks above them.
    """
    return 1.0 - distance - offset


def auto_offset(warmup_distances: Sequence[float]) -> float:
    """The offset that gives the warm-up pulls a mean reward of 0: ``1 - mean(W)``.

    This generalises the hand-tuned 0.12 to any embedder and cost: a cluster
    is worth more than an unexplored one when its pairs are closer to the
    reference than an average random sample of the corpus.
    """
    values = [d for d in warmup_distances if d is not None and np.isfinite(d)]
    if not values:
        return 0.12  # the released default, when the warm-up found no pair at all
    return 1.0 - float(np.mean(values))

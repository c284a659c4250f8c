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


def calibrate_offset(setting: float | str, random_distances: Sequence[float | None],
                     chosen_distances: Sequence[float | None] = ()) -> float:
    """``reward.offset``: the number itself, or with ``auto`` the offset of :func:`auto_offset`.

    ``auto`` calibrates on the distances of the warm-up pulls drawn at random
    (``None`` for a pull without pairs), so that reward 0 keeps meaning "as
    good as a random pull". Only when the warm-up has no random pull (all of
    it chosen by similarity) does it use ``chosen_distances``. Measured on the
    demo: with an offset set by the best documents every later pull scores
    below 0 and the bandit leaves the on-task clusters for unexplored ones.
    """
    if setting != "auto":
        return float(setting)
    return auto_offset([d for d in (random_distances or chosen_distances) if d is not None])


def quality_adjusted(reward: float, kept_share: float, penalty: float = 0.1) -> float:
    """A pull's reward, computed on its pairs that pass the quality grade, less ``penalty`` times the share that fails.

    ``kept_share`` is the share of the pull's pairs graded at least the threshold. A pull
    whose pairs are on the task but lean on their passage (or are empty, or copy the
    question) scores below one whose pairs stand alone, by up to ``penalty`` (about one
    tenth of the spread of closeness rewards between the task's clusters and the rest).
    """
    return reward - penalty * (1.0 - kept_share)

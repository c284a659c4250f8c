"""The shape of a bandit round: B clusters pulled, m documents a pull."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class RoundShape:
    """``clusters_per_round`` (B) pulls of ``docs_per_pull`` (m) documents each, per round."""

    clusters_per_round: int
    docs_per_pull: int

    @property
    def documents(self) -> int:
        """Documents a full round extracts, ``B * m``."""
        return self.clusters_per_round * self.docs_per_pull


def round_shape(documents: int, n_clusters: int, clusters_per_round: int | str,
                docs_per_pull: int | str) -> RoundShape:
    """Clusters per round B and documents per pull m for a budget of ``documents`` after the warm-up.

    ``auto`` aims at about 20 rounds whatever the budget: m = sqrt(D / 10)
    in [1, 10] and B = D / (20 m) in [1, 50], which gives the released B = 50,
    m = 10 at the paper's scale (D = 73,000) and small pulls on small budgets,
    where the paper's values would spend everything in one round. B is never
    more than the clusters there are.
    """
    d = max(int(documents), 1)
    m = int(np.clip(round(math.sqrt(d / 10)), 1, 10)) if docs_per_pull == "auto" else int(docs_per_pull)
    b = int(np.clip(round(d / (20 * m)), 1, 50)) if clusters_per_round == "auto" else int(clusters_per_round)
    return RoundShape(max(1, min(b, n_clusters)), max(1, m))

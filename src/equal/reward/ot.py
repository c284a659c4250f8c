"""Optimal transport between two point clouds with uniform weights (POT)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from equal.errors import ConfigError

COSTS = ("cosine", "euclidean")
SOLVERS = ("exact", "sinkhorn")


@dataclass(frozen=True, slots=True)
class OTResult:
    """``value`` is ``sum P_ij C_ij`` at the optimal (or entropic) plan ``plan`` ``(n, m)``."""

    value: float
    plan: np.ndarray


def cost_matrix(x: np.ndarray, y: np.ndarray, cost: str = "cosine") -> np.ndarray:
    """Pairwise cost ``(n, m)`` between rows of ``x`` ``(n, d)`` and ``y`` ``(m, d)``.

    ``cosine``: ``1 - x.y`` for unit vectors (the paper). ``euclidean``:
    ``||x - y||`` (the released scripts).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if cost == "cosine":
        return np.clip(1.0 - x @ y.T, 0.0, 2.0)
    if cost == "euclidean":
        sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
        return np.sqrt(np.maximum(sq, 0.0))
    raise ConfigError(f"reward.cost must be one of {COSTS}, not {cost!r}")


def ot_distance(x: np.ndarray, y: np.ndarray, *, cost: str = "cosine", solver: str = "exact",
                reg: float = 0.05, max_iter: int = 10_000) -> OTResult:
    """Optimal-transport distance between uniform measures on ``x`` and ``y``.

    ``W = min_{P in Pi(1/n, 1/m)} sum_ij P_ij C_ij``.

    Args:
        x: ``(n, d)`` float32, the pairs of one pull.
        y: ``(m, d)`` float32, the reference set.
        cost: ``cosine`` or ``euclidean``.
        solver: ``exact`` (network simplex, ``ot.emd``) or ``sinkhorn``
            (entropic, regularisation ``reg``; the value is the transport cost
            of the entropic plan, without the entropy term).
    """
    import ot

    if len(x) == 0 or len(y) == 0:
        raise ValueError("ot_distance needs at least one point on each side")
    m_cost = cost_matrix(x, y, cost)
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    if solver == "exact":
        plan = ot.emd(a, b, m_cost, numItermax=max(100_000, 50 * m_cost.size))
    elif solver == "sinkhorn":
        plan = ot.sinkhorn(a, b, m_cost, reg, numItermax=max_iter, stopThr=1e-9)
    else:
        raise ConfigError(f"reward.solver must be one of {SOLVERS}, not {solver!r}")
    return OTResult(value=float((plan * m_cost).sum()), plan=plan)

"""The PNGs of ``equal bench``: each metric against budget, a line per strategy, per reference set."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from equal.bench.schema import BenchResult, metrics_of
from equal.bench.strategies import BUDGET_FREE

if TYPE_CHECKING:
    from equal.bench.downstream import DownstreamRow


def plot(results: list[BenchResult], budgets: list[float], out_dir: Path) -> list[Path]:
    """A PNG per reference set and metric: the metric against budget, a line per strategy."""
    from equal.extras import require

    matplotlib = require("matplotlib", "report", "the benchmark's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name in dict.fromkeys(r.reference_set for r in results):
        mine = [r for r in results if r.reference_set == name]
        for metric in metrics_of(mine):
            fig, ax = plt.subplots(figsize=(6, 3.6))
            for strategy in dict.fromkeys(r.strategy for r in mine):
                cells = [r for r in mine if r.strategy == strategy]
                if strategy in BUDGET_FREE:
                    values = [metric.of(r) for r in cells if not math.isnan(metric.of(r))]
                    if values:
                        ax.axhline(float(np.mean(values)), ls="--", color="#6b7280", lw=1.2, label=strategy)
                    continue
                means = [_mean([metric.of(r) for r in cells if r.budget == b]) for b in budgets]
                ax.plot([100 * b for b in budgets], means, marker="o", lw=1.6, label=strategy)
            ax.set_xscale("log")
            ax.set_xticks([100 * b for b in budgets], [f"{100 * b:g}%" for b in budgets])
            ax.set_xlabel("budget (share of the corpus extracted)")
            ax.set_title(f"{name}: {metric.title}", fontsize=10)
            ax.legend(fontsize=7, frameon=False)
            path = out_dir / f"{name}-{metric.name}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            paths.append(path)
    return paths


def plot_downstream(rows: list[DownstreamRow], out_dir: Path) -> Path | None:
    """``downstream-nll.png``: held-out NLL of the fine-tuned model against budget, a panel per reference set.

    ``rows`` as ``equal.bench.downstream.run_downstream`` writes them (one model and recipe);
    the base model and budget-free strategies are horizontal lines. ``None`` when there are no rows.
    """
    from equal.bench.downstream import BASE
    from equal.extras import require

    if not rows:
        return None
    matplotlib = require("matplotlib", "report", "the benchmark's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r.reference_set for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        mine = [r for r in rows if r.reference_set == name]
        budgets = sorted({r.budget for r in mine if r.strategy != BASE and r.strategy not in BUDGET_FREE})
        for strategy in dict.fromkeys(r.strategy for r in mine):
            cells = [r for r in mine if r.strategy == strategy]
            if strategy == BASE or strategy in BUDGET_FREE:
                ax.axhline(float(np.nanmean([r.nll_heldout for r in cells])), ls="--", lw=1.2,
                           color="#6b7280" if strategy == BASE else "#111827", label=strategy)
                continue
            means = [_mean([r.nll_heldout for r in cells if r.budget == b]) for b in budgets]
            ax.plot([100 * b for b in budgets], means, marker="o", lw=1.6, label=strategy)
        if budgets:
            ax.set_xscale("log")
            ax.set_xticks([100 * b for b in budgets], [f"{100 * b:g}%" for b in budgets])
        ax.set_xlabel("budget (share of the corpus extracted)")
        ax.set_title(f"{name}: held-out NLL per answer token after fine-tuning (lower is better)", fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    path = out_dir / "downstream-nll.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _mean(values: list[float]) -> float:
    """The mean of the values that are numbers; nan (a gap in the line) when none is, without numpy's warning."""
    numbers = [v for v in values if not math.isnan(v)]
    return float(np.mean(numbers)) if numbers else math.nan

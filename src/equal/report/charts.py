"""The report's charts, drawn with matplotlib as inline SVG (no script, no network)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: render to files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from equal.report.rundir import RunView  # noqa: E402

plt.rcParams.update({"svg.fonttype": "path", "font.size": 10, "axes.spines.top": False,
                     "axes.spines.right": False, "figure.dpi": 100})
_BLUE, _GREY, _ORANGE = "#2563eb", "#9ca3af", "#ea580c"


def _text(value: object) -> str:
    """A user's string (a label, a run directory's name) as matplotlib shows it literally.

    Matplotlib reads text between two ``$`` as math (``$\\undefined$`` stops it)
    and leaves out of a legend any label that starts with ``_``.
    """
    text = str(value).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prologue and doctype: the SVG sits inside HTML


def reward_per_round(run: RunView) -> str | None:
    """Each pull's reward by round, with the round mean."""
    if not run.rounds:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    xs = [r.round for r in run.rounds for _ in r.pulls]
    ys = [p.reward for r in run.rounds for p in r.pulls]
    # Markers big and opaque enough to see at the size the report shows the chart.
    ax.scatter(xs, ys, s=28, color=_BLUE, alpha=0.7, edgecolors="white", linewidths=0.5, label="pull", zorder=3)
    ax.plot([r.round for r in run.rounds], [r.mean_reward for r in run.rounds], color=_ORANGE, lw=1.8,
            label="round mean", zorder=2)
    ax.axhline(0, color=_GREY, lw=0.8, ls=":")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("bandit round")
    ax.set_ylabel("reward (1 - OT distance - offset)")
    ax.legend(frameon=False, loc="lower right")
    return _svg(fig)


def cumulative_pairs(run: RunView, baseline: RunView | None = None) -> str:
    """Pairs written against extraction calls, for this run and an optional baseline run."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    calls, pairs = run.cumulative_pairs()
    ax.plot(calls, pairs, color=_BLUE, lw=2, label=_text(f"this run ({run.selection})"))
    if baseline is not None:
        b_calls, b_pairs = baseline.cumulative_pairs()
        ax.plot(b_calls, b_pairs, color=_GREY, lw=2, ls="--",
                label=_text(f"{baseline.run_dir.name} ({baseline.selection})"))
    warm = run.summary.warmup_documents
    if warm:
        ax.axvline(warm, color=_GREY, lw=0.8, ls=":")
        ax.annotate("end of warm-up", (warm, 0), xytext=(4, 4), textcoords="offset points", color="#6b7280",
                    fontsize=8)
    ax.set_xlabel("extraction calls (documents)")
    ax.set_ylabel("question-answer pairs")
    ax.legend(frameon=False, loc="upper left")
    return _svg(fig)


def cluster_map(run: RunView) -> str | None:
    """Cluster centroids projected on their two principal axes: colour = mean reward, size = pulls."""
    if run.centroids is None or len(run.centroids) < 3 or not run.clusters:
        return None
    centred = run.centroids - run.centroids.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    reward = np.array([c.mean_reward for c in run.clusters])
    pulls = np.array([c.pulls for c in run.clusters])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    limit = max(float(np.abs(reward).max()), 1e-6)
    points = ax.scatter(xy[:, 0], xy[:, 1], c=reward, cmap="coolwarm_r", vmin=-limit, vmax=limit,
                        s=30 + 220 * pulls / max(pulls.max(), 1), edgecolors="#374151", linewidths=0.6)
    # The number sits beside its circle, on a white box, so that it reads at any circle size and colour.
    for (x, y), cluster in zip(xy, run.clusters):
        if cluster.pulls:
            ax.annotate(str(cluster.cluster), (x, y), xytext=(6, 5), textcoords="offset points", fontsize=9,
                        fontweight="bold", color="#111827",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    fig.colorbar(points, ax=ax, label="mean reward", shrink=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("centroids, principal axis 1")
    ax.set_ylabel("principal axis 2")
    ax.set_title("cluster map", fontsize=10)
    return _svg(fig)


def labels_over_calls(run: RunView, baseline: RunView | None = None) -> str | None:
    """Documents extracted so far from each label (e.g. source), against extraction calls."""
    if not run.documents or all(d.label is None for d in run.documents):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    labels = sorted({str(d.label) for d in run.documents})
    colours = plt.get_cmap("tab10")
    for i, label in enumerate(labels):
        for view, style, suffix in ((run, "-", ""), (baseline, "--", f" ({baseline.selection})" if baseline else "")):
            if view is None or not view.documents:
                continue
            counts = np.cumsum([str(d.label) == label for d in view.documents])
            ax.plot(np.arange(1, len(counts) + 1), counts, ls=style, color=colours(i % 10), lw=1.8,
                    label=_text(f"{label}{suffix}"))
    ax.set_xlabel("extraction calls (documents)")
    ax.set_ylabel("documents extracted")
    ax.legend(frameon=False, loc="upper left", fontsize=8)
    return _svg(fig)

"""The downstream section of ``results.md``: what fine-tuning on each strategy's pairs did to the model.

Pure functions of the rows ``equal.bench.downstream.run_downstream`` wrote. For each
reference set: held-out NLL (and pass@1 where the held-out part is code tasks), pairs
and training tokens, and each strategy's difference from EQUAL on the same held-out
examples with a paired bootstrap 95% interval beside the seed spread; then how well the
OT proxy ranks the cells, and the recipes measured besides the main one.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from equal.bench.downstream import BASE, DownstreamRow, paired_difference, paired_pass_difference

REFERENCE_STRATEGY = "EQUAL"  # every other strategy is compared with it
_BUDGET_FREE = {"all"}


@dataclass(frozen=True)
class Comparison:
    """A strategy against EQUAL at one budget, on the same held-out examples and matched seeds."""

    strategy: str
    budget: float
    seeds: int  # matched seeds
    nll: tuple[float, float, float]  # difference (strategy - EQUAL), 95% low, high
    passed: tuple[float, float, float] | None
    spread: float  # the larger of the two strategies' seed spreads of NLL (nan with one seed each)

    @property
    def beyond_noise(self) -> bool:
        """The interval excludes 0 and the difference is larger than the seed spread (where one is known)."""
        diff, low, high = self.nll
        return (low > 0 or high < 0) and (math.isnan(self.spread) or abs(diff) > self.spread)


def main_recipe(rows: list[DownstreamRow]) -> str | None:
    """The recipe (``config_id``) with the most rows: the one the main tables show."""
    counts = Counter(r.config_id for r in rows)
    return counts.most_common(1)[0][0] if counts else None


def _spread(rows: list[DownstreamRow]) -> float:
    values = [r.nll_heldout for r in rows]
    return max(values) - min(values) if len(values) > 1 else math.nan


def compare(rows: list[DownstreamRow], strategy: str, budget: float) -> Comparison | None:
    """``strategy`` at ``budget`` against EQUAL at that budget, over the seeds both have (the base model: any)."""
    mine = {r.seed: r for r in rows if r.strategy == strategy and (r.budget == budget or strategy == BASE)}
    ours = {r.seed: r for r in rows if r.strategy == REFERENCE_STRATEGY and r.budget == budget}
    if strategy == BASE:
        pairs = [(mine[0].score, ours[s].score) for s in sorted(ours)] if 0 in mine else []
    else:
        pairs = [(mine[s].score, ours[s].score) for s in sorted(set(mine) & set(ours))]
    if not pairs:
        return None
    spread = max(_spread(list(mine.values())), _spread(list(ours.values())))
    return Comparison(strategy, budget, len(pairs), paired_difference(pairs), paired_pass_difference(pairs), spread)


def _mean_range(values: list[float], fmt: str = "{:.3f}") -> str:
    if not values:
        return "-"
    text = fmt.format(float(np.mean(values)))
    return text if min(values) == max(values) else f"{text} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def _interval(value: tuple[float, float, float] | None, fmt: str = "{:+.3f}") -> str:
    if value is None:
        return "-"
    diff, low, high = value
    return f"{fmt.format(diff)} [{fmt.format(low)}, {fmt.format(high)}]"


def _label(row: DownstreamRow) -> str:
    return "-" if row.strategy == BASE else "100%" if row.strategy in _BUDGET_FREE else f"{row.budget:.0%}"


def reference_set_table(rows: list[DownstreamRow], name: str) -> list[str]:
    """The table of one reference set (one recipe), and which differences from EQUAL lie beyond the noise."""
    mine = [r for r in rows if r.reference_set == name]
    has_pass = any(r.score.passed for r in mine)
    first = mine[0]
    lines = [f"### {name} (held-out sample: {first.score.examples} examples, {first.score.tokens:,} answer tokens)",
             "", "| budget | strategy | seeds | held-out NLL | " + ("pass@1 | " if has_pass else "")
             + "pairs trained (available) | training tokens | NLL minus EQUAL [95% CI] | "
             + ("pass@1 minus EQUAL [95% CI] | " if has_pass else "") + "seed spread |",
             "|---" * (8 + 2 * has_pass) + "|"]
    comparisons: list[Comparison] = []
    budgets = sorted({r.budget for r in mine if r.strategy != BASE})
    for budget in [0.0, *budgets]:
        for strategy in dict.fromkeys(r.strategy for r in mine):
            cell = [r for r in mine if r.strategy == strategy and r.budget == budget]
            if not cell:
                continue
            comparison = compare(mine, strategy, budgets[0] if strategy == BASE and budgets else budget) \
                if strategy != REFERENCE_STRATEGY else None
            if comparison is not None:
                comparisons.append(comparison)
            passes = [r.score.pass_at_1 for r in cell if r.score.pass_at_1 is not None]
            lines.append("| " + " | ".join([
                _label(cell[0]), strategy, str(len(cell)), _mean_range([r.nll_heldout for r in cell]),
                *([_mean_range(passes)] if has_pass else []),
                f"{_mean_range([r.train_pairs for r in cell], '{:,.0f}')} "
                f"({_mean_range([r.pairs_available for r in cell], '{:,.0f}')})",
                _mean_range([r.training.train_tokens for r in cell], "{:,.0f}"),
                _interval(comparison.nll if comparison else None),
                *([_interval(comparison.passed if comparison else None, "{:+.3f}")] if has_pass else []),
                "-" if len(cell) < 2 else f"{_spread(cell):.3f}",
            ]) + " |")
    lines.append("")
    beyond = [c for c in comparisons if c.beyond_noise]
    seeds_known = any(not math.isnan(c.spread) for c in comparisons)
    lines.append(("Differences from EQUAL beyond both the 95% interval and the seed spread: " if seeds_known else
                  "Differences from EQUAL whose 95% interval excludes 0 (one seed each: the seed spread is not "
                  "measured yet): ") + (
        "; ".join(f"{c.strategy} at {c.budget:.0%} ({'worse' if c.nll[0] > 0 else 'better'} than EQUAL by "
                  f"{abs(c.nll[0]):.3f} NLL)" for c in beyond) if beyond else "none") + ".")
    lines.append("")
    return lines


def spearman_lines(rows: list[DownstreamRow]) -> list[str]:
    """Rank correlation between the OT proxy and the held-out NLL, over all cells and per reference set."""
    from scipy.stats import spearmanr

    cells = [r for r in rows if r.strategy != BASE and not math.isnan(r.ot_heldout) and not math.isnan(r.nll_heldout)]
    lines = ["Spearman rank correlation between the OT proxy and the downstream NLL, cell by cell "
             "(positive: the proxy ranks cells as the fine-tuned model does):"]
    pooled = "all cells (reference sets pooled, though their NLL scales differ)"
    for label, group in [(pooled, cells), *((n, [r for r in cells if r.reference_set == n])
                                                 for n in dict.fromkeys(r.reference_set for r in cells))]:
        if len(group) < 3:
            lines.append(f"- {label}: too few cells ({len(group)})")
            continue
        rho, p = spearmanr([r.ot_heldout for r in group], [r.nll_heldout for r in group])
        lines.append(f"- {label}: rho {float(rho):.3f} (p {float(p):.3g}, {len(group)} cells)")
    return lines + [""]


def other_recipes(rows: list[DownstreamRow], main: str) -> list[str]:
    """The cells measured under another recipe (e.g. another learning rate), beside the main recipe's same cells."""
    others = [r for r in rows if r.config_id != main]
    if not others:
        return []
    base = next(r.hyperparameters for r in rows if r.config_id == main)
    lines = ["### The same cells under other recipes", "",
             "Each row: the strategies' held-out NLL under one recipe, and their order (best first).", "",
             "| reference set | budget | recipe | NLL by strategy | order |", "|---|---|---|---|---|"]
    groups = dict.fromkeys((r.reference_set, r.budget) for r in others if r.strategy != BASE)
    for name, budget in groups:
        strategies = list(dict.fromkeys(r.strategy for r in others
                                        if (r.reference_set, r.budget) == (name, budget)))
        for ident in [main, *dict.fromkeys(r.config_id for r in others)]:
            cells = {s: [r.nll_heldout for r in rows if r.config_id == ident and r.reference_set == name
                         and r.budget == budget and r.strategy == s and r.seed == 0] for s in strategies}
            if not any(cells.values()):
                continue
            params = next(r.hyperparameters for r in rows if r.config_id == ident)
            changed = ", ".join(f"{k} {v}" for k, v in params.items() if base.get(k) != v) or "main"
            means = {s: float(np.mean(v)) for s, v in cells.items() if v}
            lines.append(f"| {name} | {budget:.0%} | {changed} | "
                         + ", ".join(f"{s} {v:.3f}" for s, v in means.items()) + " | "
                         + " < ".join(sorted(means, key=means.__getitem__)) + " |")
    return lines + [""]


def downstream_markdown(rows: list[DownstreamRow]) -> str:
    """The whole downstream section (empty without rows)."""
    main = main_recipe(rows)
    if main is None:
        return ""
    chosen = [r for r in rows if r.config_id == main]
    first = chosen[0]
    lines = ["", "## Downstream: a model fine-tuned on each strategy's pairs", "",
             f"Model: {first.model}, fine-tuned from the same weights for every cell on the cell's pairs "
             "(chat template, loss on the answer tokens only), then scored on a fixed sample of the reference "
             "set's held-out part: negative log-likelihood per answer token (lower is better), and greedy pass@1 "
             "where the held-out examples are code tasks; mean over seeds (min-max). Differences from EQUAL are "
             "on the same examples and seeds, with a paired bootstrap 95% interval over the examples. "
             f"Device: {first.device}. Recipe: "
             + ", ".join(f"{k} {v}" for k, v in first.hyperparameters.items()) + ".", ""]
    for name in dict.fromkeys(r.reference_set for r in chosen):
        lines += reference_set_table(chosen, name)
    lines += spearman_lines(chosen)
    lines += other_recipes(rows, main)
    seconds = [r.seconds for r in chosen if r.strategy != BASE]
    if seconds:
        lines += [f"Time per fine-tuned cell: {np.mean(seconds) / 60:.1f} minutes on average "
                  f"({min(seconds) / 60:.1f}-{max(seconds) / 60:.1f}); {len(seconds)} cells, "
                  f"{sum(r.seconds for r in rows) / 3600:.1f} hours for every row of every recipe.", ""]
    return "\n".join(lines)


_HEADING = "\n## Downstream:"


def write_downstream(out_dir: Path) -> Path:
    """Put the downstream section (from ``downstream.jsonl``) at the end of ``out_dir/results.md``, and its plot.

    An earlier downstream section is replaced; the rest of ``results.md`` is kept.
    """
    from equal.bench.downstream import RESULTS_FILE, read_downstream
    from equal.bench.plots import plot_downstream

    rows = read_downstream(out_dir / RESULTS_FILE)
    path = out_dir / "results.md"
    text = path.read_text() if path.exists() else ""
    head = text.split(_HEADING)[0].rstrip("\n") + "\n" if text else ""
    path.write_text(head + downstream_markdown(rows))
    main = main_recipe(rows)
    plot_downstream([r for r in rows if r.config_id == main], out_dir)
    return path

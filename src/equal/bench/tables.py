"""The Markdown of ``results.md``: the data, a table per reference set, the bar, the ablation table.

Pure functions of the results ``run_bench`` measured (one :class:`~equal.bench.schema.BenchResult`
per reference set, strategy, budget and seed). The bar's thresholds are not here: they are a claim
about EQUAL that the caller states (``equal bench`` holds them) and passes in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from equal.bench.runner import BenchData
from equal.bench.schema import (
    LLM_CALLS,
    OT_HELDOUT,
    RELEVANT_FRACTION,
    BenchResult,
    ExtractedPassage,
    Metric,
    metrics_of,
)
from equal.bench.strategies import ABLATIONS, BUDGET_FREE


@dataclass(frozen=True)
class Bar:
    """What EQUAL is claimed to reach, checked against the results.

    Args:
        beats_at: the budget at which EQUAL must beat random documents on relevant
            fraction and OT distance, and all documents on OT distance.
        ratio_at: the budget at which EQUAL's relevant fraction is set against random documents'.
        min_ratio: the least that ratio may be.
    """

    beats_at: float
    ratio_at: float
    min_ratio: float


def results_markdown(extracted: Path, passages: list[ExtractedPassage], results: list[BenchResult],
                     budgets: list[float], bar: Bar | None) -> str:
    """The whole ``results.md``; without a ``bar``, no verdict section."""
    return (data_summary(extracted, passages) + markdown(results, budgets) + "\n"
            + (verdict(results, budgets, bar) if bar is not None else "") + ablation_table(results, budgets))


def data_summary(extracted: Path, passages: list[ExtractedPassage]) -> str:
    """What the tables rest on: passages per source, and which runtime extracted them."""
    from collections import Counter

    by_source = Counter("?" if p.source is None else p.source for p in passages)
    by_runtime: dict[str, list[int]] = {}
    for p in passages:  # lines written by `equal extract` do not name their runtime: llama.cpp or a server
        runtime = "equal extract" if p.extracted_with is None else p.extracted_with
        by_runtime.setdefault(runtime, []).append(len(p.qa_pairs))
    lines = [f"## Data: {extracted.name}", "",
             f"- {len(passages):,} extracted passages: "
             + ", ".join(f"{source} {n:,}" for source, n in by_source.most_common()),
             "- extracted by: " + "; ".join(f"{name} {len(n):,} ({sum(n) / len(n):.2f} pairs per passage)"
                                           for name, n in by_runtime.items()), "", ""]
    return "\n".join(lines)


def _summary(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    mean = float(np.mean(values))
    integral = all(float(v).is_integer() for v in values)
    fmt = "{:,.0f}" if abs(mean) >= 100 or integral else "{:.3f}"
    text = fmt.format(mean)
    return text if len(values) == 1 or min(values) == max(values) else \
        f"{text} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def markdown(results: list[BenchResult], budgets: list[float]) -> str:
    """One table per reference set: mean over seeds (min-max)."""
    lines: list[str] = []
    metrics = metrics_of(results)
    for name in dict.fromkeys(r.reference_set for r in results):
        lines += [f"### {name}", "", "| budget | strategy | " + " | ".join(m.title for m in metrics) + " |",
                  "|---|---|" + "---|" * len(metrics)]
        mine = [r for r in results if r.reference_set == name]
        for budget in budgets:
            for strategy in dict.fromkeys(r.strategy for r in mine):
                cell = [r for r in mine if r.strategy == strategy and
                        (r.budget == budget or strategy in BUDGET_FREE)]
                if not cell or (strategy in BUDGET_FREE and budget != budgets[0]):
                    continue
                label = "100%" if strategy in BUDGET_FREE else f"{budget:.0%}"
                lines.append(f"| {label} | {strategy} | " + " | ".join(_summary([m.of(r) for r in cell])
                                                                    for m in metrics) + " |")
        lines.append("")
    return "\n".join(lines)


def _mean(results: list[BenchResult], name: str, strategy: str, budget: float | None, metric: Metric) -> float:
    cells = [metric.of(r) for r in results if r.reference_set == name and r.strategy == strategy
             and (budget is None or r.budget == budget) and not math.isnan(metric.of(r))]
    return float(np.mean(cells)) if cells else math.nan


def verdict(results: list[BenchResult], budgets: list[float], bar: Bar) -> str:
    """``bar``'s claims read off the results, where EQUAL's OT distance reaches all's, and every loss to a baseline."""
    lines = ["## The bar", ""]
    for name in dict.fromkeys(r.reference_set for r in results):
        def m(strategy: str, budget: float | None, metric: Metric, name: str = name) -> float:
            return _mean(results, name, strategy, budget, metric)

        lines.append(f"### {name}")
        if bar.beats_at in budgets:
            at = bar.beats_at
            eq_rel, rnd_rel = m("EQUAL", at, RELEVANT_FRACTION), m("random documents", at, RELEVANT_FRACTION)
            eq_ot, rnd_ot, all_ot = m("EQUAL", at, OT_HELDOUT), m("random documents", at, OT_HELDOUT), \
                m("all", None, OT_HELDOUT)
            lines += [f"- {at:.0%}: relevant fraction EQUAL {eq_rel:.3f} vs random {rnd_rel:.3f} "
                      f"({'met' if eq_rel > rnd_rel else 'NOT met'}); OT EQUAL {eq_ot:.4f} vs random {rnd_ot:.4f} "
                      f"({'met' if eq_ot < rnd_ot else 'NOT met'}); OT EQUAL {eq_ot:.4f} vs all {all_ot:.4f} "
                      f"({'met' if eq_ot < all_ot else 'NOT met'})"]
        if bar.ratio_at in budgets:
            at = bar.ratio_at
            eq_rel, rnd_rel = m("EQUAL", at, RELEVANT_FRACTION), m("random documents", at, RELEVANT_FRACTION)
            ratio = eq_rel / rnd_rel if rnd_rel else math.inf
            met = "met" if ratio >= bar.min_ratio else "NOT met"
            lines.append(f"- {at:.0%}: relevant fraction EQUAL / random = {ratio:.2f} ({met}, needs {bar.min_ratio:g})")
        all_ot, all_calls = m("all", None, OT_HELDOUT), m("all", None, LLM_CALLS)
        match = next((b for b in sorted(budgets) if m("EQUAL", b, OT_HELDOUT) <= all_ot), None)
        if match is None:
            lines.append("- EQUAL's OT distance does not reach all's at any budget tried")
        else:
            lines.append(f"- EQUAL's OT distance matches all's from {match:.0%} on: "
                         f"{all_calls / m('EQUAL', match, LLM_CALLS):.1f}x fewer LLM calls")
        losses = [f"{b:.0%} {metric.short_title}: {s}"
                  for b in budgets for metric in (OT_HELDOUT, RELEVANT_FRACTION)
                  for s in dict.fromkeys(r.strategy for r in results)
                  if s not in ("EQUAL", *BUDGET_FREE) and not s.startswith("EQUAL")
                  and (m(s, b, metric) < m("EQUAL", b, metric) if metric.lower_is_better
                       else m(s, b, metric) > m("EQUAL", b, metric))]
        lines.append("- EQUAL loses to: " + ("; ".join(losses) if losses else "no baseline"))
        lines.append("")
    return "\n".join(lines)


#: the rows an ablation table compares the variants with
_ABLATION_CONTEXT = ("EQUAL, paper settings", "avg-sim top-k", "random documents")


def ablation_table(results: list[BenchResult], budgets: list[float]) -> str:
    """EQUAL's defaults against each ablation: OT distance and relevant fraction per budget, per reference set.

    Empty when no ablation ran. The baselines at the foot give the scale.
    """
    ran = [s for s in ABLATIONS if any(r.strategy == s for r in results)]
    if not ran:
        return ""
    rows = ["EQUAL", *ran, *_ABLATION_CONTEXT]
    lines = ["", "## Ablation", "", "Mean over seeds (min-max); lower OT and higher relevant fraction are better.", ""]
    for name in dict.fromkeys(r.reference_set for r in results):
        mine = [r for r in results if r.reference_set == name]
        shown = [b for b in budgets if any(r.budget == b and r.strategy in ran for r in mine)]
        lines += [f"| {name} | " + " | ".join(f"OT {b:.0%}" for b in shown) + " | "
                  + " | ".join(f"relevant {b:.0%}" for b in shown) + " |",
                  "|---|" + "---|" * (2 * len(shown))]
        for strategy in rows:
            cells = [_summary([metric.of(r) for r in mine if r.strategy == strategy and r.budget == b])
                     for metric in (OT_HELDOUT, RELEVANT_FRACTION) for b in shown]
            if any(c != "-" for c in cells):
                label = f"**{strategy} (defaults)**" if strategy == "EQUAL" else strategy
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_results(data: BenchData, out_dir: Path, results: list[BenchResult], budgets: list[float],
                  bar: Bar | None = None) -> Path:
    """Write ``results.md`` (data, tables, ``bar``'s verdict when given, ablation) and the plots to ``out_dir``."""
    from equal.bench.plots import plot

    path = out_dir / "results.md"
    path.write_text(results_markdown(data.extracted, data.passages(), results, budgets, bar))
    plot(results, budgets, out_dir)
    if (out_dir / "downstream.jsonl").exists():  # a rerun of the bench keeps the downstream section
        from equal.bench.downstream_report import write_downstream

        write_downstream(out_dir)
    return path

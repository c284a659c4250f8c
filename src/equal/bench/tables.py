"""The Markdown of ``results.md``: the data, a table per reference set, the bar, the ablation table.

Pure functions of the results ``run_bench`` measured (one dict per reference set,
strategy, budget and seed). The bar's thresholds are not here: they are a claim
about EQUAL that the caller states (``equal bench`` holds them) and passes in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from equal.bench.runner import METRICS, BenchData
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


def results_markdown(extracted: Path, rows: list[dict[str, Any]], results: list[dict[str, Any]],
                     budgets: list[float], bar: Bar | None) -> str:
    """The whole ``results.md``; without a ``bar``, no verdict section."""
    return (data_summary(extracted, rows) + markdown(results, budgets) + "\n"
            + (verdict(results, budgets, bar) if bar is not None else "") + ablation_table(results, budgets))


def data_summary(extracted: Path, rows: list[dict[str, Any]]) -> str:
    """What the tables rest on: passages per source, and which runtime extracted them."""
    from collections import Counter

    by_source = Counter(r.get("source", "?") for r in rows)
    by_runtime: dict[str, list[int]] = {}
    for r in rows:  # rows written by `equal extract` do not name their runtime: llama.cpp or a server
        by_runtime.setdefault(r.get("extracted_with", "equal extract"), []).append(len(r.get("qa_pairs", [])))
    lines = [f"## Data: {extracted.name}", "",
             f"- {len(rows):,} extracted passages: "
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


def markdown(results: list[dict[str, Any]], budgets: list[float]) -> str:
    """One table per reference set: mean over seeds (min-max)."""
    lines: list[str] = []
    for name in dict.fromkeys(r["reference_set"] for r in results):
        lines += [f"### {name}", "", "| budget | strategy | " + " | ".join(t for t, _ in METRICS.values()) + " |",
                  "|---|---|" + "---|" * len(METRICS)]
        mine = [r for r in results if r["reference_set"] == name]
        for budget in budgets:
            for strategy in dict.fromkeys(r["strategy"] for r in mine):
                cell = [r for r in mine if r["strategy"] == strategy and
                        (r["budget"] == budget or strategy in BUDGET_FREE)]
                if not cell or (strategy in BUDGET_FREE and budget != budgets[0]):
                    continue
                label = "100%" if strategy in BUDGET_FREE else f"{budget:.0%}"
                lines.append(f"| {label} | {strategy} | " + " | ".join(_summary([r[m] for r in cell])
                                                                    for m in METRICS) + " |")
        lines.append("")
    return "\n".join(lines)


def _mean(results: list[dict[str, Any]], name: str, strategy: str, budget: float | None, metric: str) -> float:
    cells = [r[metric] for r in results if r["reference_set"] == name and r["strategy"] == strategy
             and (budget is None or r["budget"] == budget) and not math.isnan(r[metric])]
    return float(np.mean(cells)) if cells else math.nan


def verdict(results: list[dict[str, Any]], budgets: list[float], bar: Bar) -> str:
    """``bar``'s claims read off the results, where EQUAL's OT distance reaches all's, and every loss to a baseline."""
    lines = ["## The bar", ""]
    for name in dict.fromkeys(r["reference_set"] for r in results):
        def m(strategy: str, budget: float | None, metric: str, name: str = name) -> float:
            return _mean(results, name, strategy, budget, metric)

        lines.append(f"### {name}")
        if bar.beats_at in budgets:
            at = bar.beats_at
            eq_rel, rnd_rel = m("EQUAL", at, "relevant_fraction"), m("random documents", at, "relevant_fraction")
            eq_ot, rnd_ot, all_ot = m("EQUAL", at, "ot_heldout"), m("random documents", at, "ot_heldout"), \
                m("all", None, "ot_heldout")
            lines += [f"- {at:.0%}: relevant fraction EQUAL {eq_rel:.3f} vs random {rnd_rel:.3f} "
                      f"({'met' if eq_rel > rnd_rel else 'NOT met'}); OT EQUAL {eq_ot:.4f} vs random {rnd_ot:.4f} "
                      f"({'met' if eq_ot < rnd_ot else 'NOT met'}); OT EQUAL {eq_ot:.4f} vs all {all_ot:.4f} "
                      f"({'met' if eq_ot < all_ot else 'NOT met'})"]
        if bar.ratio_at in budgets:
            at = bar.ratio_at
            eq_rel, rnd_rel = m("EQUAL", at, "relevant_fraction"), m("random documents", at, "relevant_fraction")
            ratio = eq_rel / rnd_rel if rnd_rel else math.inf
            met = "met" if ratio >= bar.min_ratio else "NOT met"
            lines.append(f"- {at:.0%}: relevant fraction EQUAL / random = {ratio:.2f} ({met}, needs {bar.min_ratio:g})")
        all_ot, all_calls = m("all", None, "ot_heldout"), m("all", None, "llm_calls")
        match = next((b for b in sorted(budgets) if m("EQUAL", b, "ot_heldout") <= all_ot), None)
        if match is None:
            lines.append("- EQUAL's OT distance does not reach all's at any budget tried")
        else:
            lines.append(f"- EQUAL's OT distance matches all's from {match:.0%} on: "
                         f"{all_calls / m('EQUAL', match, 'llm_calls'):.1f}x fewer LLM calls")
        losses = [f"{b:.0%} {METRICS[metric][0].split(' (')[0]}: {s}"
                  for b in budgets for metric in ("ot_heldout", "relevant_fraction")
                  for s in dict.fromkeys(r["strategy"] for r in results)
                  if s not in ("EQUAL", *BUDGET_FREE) and not s.startswith("EQUAL")
                  and (m(s, b, metric) < m("EQUAL", b, metric) if METRICS[metric][1]
                       else m(s, b, metric) > m("EQUAL", b, metric))]
        lines.append("- EQUAL loses to: " + ("; ".join(losses) if losses else "no baseline"))
        lines.append("")
    return "\n".join(lines)


#: the rows an ablation table compares the variants with
_ABLATION_CONTEXT = ("EQUAL, paper settings", "avg-sim top-k", "random documents")


def ablation_table(results: list[dict[str, Any]], budgets: list[float]) -> str:
    """EQUAL's defaults against each ablation: OT distance and relevant fraction per budget, per reference set.

    Empty when no ablation ran. The baselines at the foot give the scale.
    """
    ran = [s for s in ABLATIONS if any(r["strategy"] == s for r in results)]
    if not ran:
        return ""
    rows = ["EQUAL", *ran, *_ABLATION_CONTEXT]
    lines = ["", "## Ablation", "", "Mean over seeds (min-max); lower OT and higher relevant fraction are better.", ""]
    for name in dict.fromkeys(r["reference_set"] for r in results):
        mine = [r for r in results if r["reference_set"] == name]
        shown = [b for b in budgets if any(r["budget"] == b and r["strategy"] in ran for r in mine)]
        lines += [f"| {name} | " + " | ".join(f"OT {b:.0%}" for b in shown) + " | "
                  + " | ".join(f"relevant {b:.0%}" for b in shown) + " |",
                  "|---|" + "---|" * (2 * len(shown))]
        for strategy in rows:
            cells = [_summary([r[metric] for r in mine if r["strategy"] == strategy and r["budget"] == b])
                     for metric in ("ot_heldout", "relevant_fraction") for b in shown]
            if any(c != "-" for c in cells):
                label = f"**{strategy} (defaults)**" if strategy == "EQUAL" else strategy
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_results(data: BenchData, out_dir: Path, results: list[dict[str, Any]], budgets: list[float],
                  bar: Bar | None = None) -> Path:
    """Write ``results.md`` (data, tables, ``bar``'s verdict when given, ablation) and the plots to ``out_dir``."""
    from equal.bench.plots import plot

    path = out_dir / "results.md"
    path.write_text(results_markdown(data.extracted, data.rows(), results, budgets, bar))
    plot(results, budgets, out_dir)
    if (out_dir / "downstream.jsonl").exists():  # a rerun of the bench keeps the downstream section
        from equal.bench.downstream_report import write_downstream

        write_downstream(out_dir)
    return path

"""Running every strategy at every budget and seed, measuring, and writing the table and plots."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from equal.bench.strategies import ABLATIONS, BUDGET_FREE, STRATEGIES, Context, Selection
from equal.errors import InputError
from equal.progress import NullProgress, Progress

logger = logging.getLogger(__name__)

METRICS = {  # name -> (column title, lower is better)
    "ot_heldout": ("OT to held-out (lower is better)", True),
    "relevant_fraction": ("relevant fraction of documents", False),
    "relevant_pairs_per_1k_calls": ("relevant pairs per 1,000 LLM calls", False),
    "llm_calls": ("LLM calls", True),
    "tokens": ("tokens (in + out)", True),
    "selection_seconds": ("selection wall time (s, no LLM)", True),
}


@dataclass
class BenchData:
    """A benchmark folder: ``manifest.json`` (from ``equal make-bench``) and the replay corpus.

    ``extracted`` is the corpus with every document's pairs (``equal extract``
    writes it); documents it lacks are left out of every strategy alike.
    """

    root: Path
    extracted: Path

    def manifest(self) -> dict[str, Any]:
        path = self.root / "manifest.json"
        if not path.exists():
            raise InputError(f"{path} is missing; build the benchmark with `equal make-bench {self.root}`")
        return json.loads(path.read_text())


def _measure(selection: Selection, ctx: Context, rows: dict[str, dict], relevant: set[str],
             heldout: np.ndarray, embed: Any) -> dict[str, float]:
    from equal.reward import ot_distance

    calls = len(selection.document_ids)
    relevant_docs = [i for i in selection.document_ids if rows[i].get("source") in relevant]
    relevant_pairs = sum(1 for p in selection.pairs if rows[p.document_id].get("source") in relevant)
    vectors = embed([p.as_text() for p in selection.pairs])
    return {
        "ot_heldout": ot_distance(vectors, heldout).value if len(selection.pairs) else math.nan,
        "relevant_fraction": len(relevant_docs) / max(calls, 1),
        "relevant_pairs_per_1k_calls": 1000 * relevant_pairs / max(calls, 1),
        "llm_calls": calls,
        "tokens": sum(int(rows[i].get("tokens", 0)) for i in selection.document_ids),
        "selection_seconds": selection.seconds,
        "pairs": len(selection.pairs),
    }


def run_bench(data: BenchData, out_dir: Path, *, budgets: list[float], seeds: list[int],
              strategies: list[str], reference_sets: list[str] | None = None, embedding_model: str = "minilm",
              progress: Progress | None = None) -> list[dict[str, Any]]:
    """Every (reference set, strategy, budget, seed), resumable; writes ``results.jsonl``, ``results.md``, plots.

    Every strategy's pairs go through the same decontamination against the reward
    reference (the pipeline does it already; the others get it here), and are
    measured with the same embedder against the held-out part.
    """
    from equal.config import EmbeddingConfig
    from equal.corpus import read_reference
    from equal.embedding import EmbeddingCache, embed_cached
    from equal.filters import NgramIndex
    from equal.run.builders import build_embedder

    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        raise InputError(f"unknown strategies {unknown}; choose from {list(STRATEGIES)}")
    progress = progress or NullProgress()
    manifest = data.manifest()
    sets = reference_sets or list(manifest["reference_sets"])
    out_dir.mkdir(parents=True, exist_ok=True)
    rows_list = [json.loads(line) for line in data.extracted.read_text().splitlines() if line.strip()]
    if not rows_list:
        raise InputError(f"{data.extracted} holds no extracted documents; run `equal extract` on the corpus first")
    rows = {r["id"]: r for r in rows_list}
    done_path = out_dir / "results.jsonl"
    done = {(r["reference_set"], r["strategy"], r["budget"], r["seed"]): r
            for r in (json.loads(line) for line in done_path.read_text().splitlines())} if done_path.exists() else {}
    embedder = build_embedder(EmbeddingConfig(model=embedding_model))
    cache = EmbeddingCache(out_dir / "cache" / "embeddings.sqlite")

    def embed(texts: list[str]) -> np.ndarray:
        return embed_cached(embedder, texts, cache)

    per_set: dict[str, tuple[np.ndarray, NgramIndex]] = {}
    jobs = [(name, strategy, budget, seed) for name in sets for strategy in strategies for budget in budgets
            for seed in seeds if not (strategy in BUDGET_FREE and budget != budgets[0])]
    try:
        with done_path.open("a") as log, progress.task("bench runs", total=len(jobs)) as task:
            for name, strategy, budget, seed in jobs:
                key = (name, strategy, budget, seed)
                if key in done:
                    task.advance()
                    continue
                spec = manifest["reference_sets"][name]
                reward = data.root / spec["reward"]
                if name not in per_set:  # read and embed each reference set once, not once per run
                    per_set[name] = (
                        embed([p.as_text() for p in read_reference(data.root / spec["heldout"], min_examples=1)]),
                        NgramIndex(t for p in read_reference(reward, min_examples=1) for t in (p.question, p.answer)),
                    )
                heldout, index = per_set[name]
                ctx = Context(corpus=data.extracted, rows=rows_list, reward_reference=reward,
                              embedding_model=embedding_model, cache_dir=out_dir / "cache",
                              work_dir=out_dir)
                selection = STRATEGIES[strategy](ctx, budget, seed)
                selection.pairs = [p for p in selection.pairs
                                   if not (index.overlaps(p.question) or index.overlaps(p.answer))]
                result = {"reference_set": name, "strategy": strategy, "budget": budget, "seed": seed,
                          **_measure(selection, ctx, rows, set(spec["relevant_sources"]), heldout, embed)}
                log.write(json.dumps(result) + "\n")
                log.flush()
                done[key] = result
                task.advance()
                task.note(f"{name}: {strategy} at {budget:.0%}, seed {seed}")
    finally:
        cache.close()
    order = {name: i for i, name in enumerate(strategies)}  # the table lists strategies in the order asked
    results = sorted((r for k, r in done.items() if k[0] in sets and k[1] in strategies),
                     key=lambda r: (sets.index(r["reference_set"]), r["budget"], order[r["strategy"]], r["seed"]))
    (out_dir / "results.md").write_text(data_summary(data.extracted, rows_list) + markdown(results, budgets) + "\n"
                                        + verdict(results, budgets) + ablation_table(results, budgets))
    plot(results, budgets, out_dir)
    return results


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


def verdict(results: list[dict[str, Any]], budgets: list[float]) -> str:
    """The issue's bar, read off the results, and every place where EQUAL loses to a baseline."""
    lines = ["## The bar", ""]
    for name in dict.fromkeys(r["reference_set"] for r in results):
        def m(strategy: str, budget: float | None, metric: str, name: str = name) -> float:
            return _mean(results, name, strategy, budget, metric)

        lines.append(f"### {name}")
        if 0.05 in budgets:
            eq_rel, rnd_rel = m("EQUAL", 0.05, "relevant_fraction"), m("random documents", 0.05, "relevant_fraction")
            eq_ot, rnd_ot, all_ot = m("EQUAL", 0.05, "ot_heldout"), m("random documents", 0.05, "ot_heldout"), \
                m("all", None, "ot_heldout")
            lines += [f"- 5%: relevant fraction EQUAL {eq_rel:.3f} vs random {rnd_rel:.3f} "
                      f"({'met' if eq_rel > rnd_rel else 'NOT met'}); OT EQUAL {eq_ot:.4f} vs random {rnd_ot:.4f} "
                      f"({'met' if eq_ot < rnd_ot else 'NOT met'}); OT EQUAL {eq_ot:.4f} vs all {all_ot:.4f} "
                      f"({'met' if eq_ot < all_ot else 'NOT met'})"]
        if 0.1 in budgets:
            eq_rel, rnd_rel = m("EQUAL", 0.1, "relevant_fraction"), m("random documents", 0.1, "relevant_fraction")
            ratio = eq_rel / rnd_rel if rnd_rel else math.inf
            met = "met" if ratio >= 1.5 else "NOT met"
            lines.append(f"- 10%: relevant fraction EQUAL / random = {ratio:.2f} ({met}, needs 1.5)")
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


def plot(results: list[dict[str, Any]], budgets: list[float], out_dir: Path) -> list[Path]:
    """A PNG per reference set and metric: the metric against budget, a line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name in dict.fromkeys(r["reference_set"] for r in results):
        mine = [r for r in results if r["reference_set"] == name]
        for metric, (title, _) in METRICS.items():
            fig, ax = plt.subplots(figsize=(6, 3.6))
            for strategy in dict.fromkeys(r["strategy"] for r in mine):
                cells = [r for r in mine if r["strategy"] == strategy]
                if strategy in BUDGET_FREE:
                    values = [r[metric] for r in cells if not math.isnan(r[metric])]
                    if values:
                        ax.axhline(float(np.mean(values)), ls="--", color="#6b7280", lw=1.2, label=strategy)
                    continue
                means = [np.nanmean([r[metric] for r in cells if r["budget"] == b] or [math.nan]) for b in budgets]
                ax.plot([100 * b for b in budgets], means, marker="o", lw=1.6, label=strategy)
            ax.set_xscale("log")
            ax.set_xticks([100 * b for b in budgets], [f"{100 * b:g}%" for b in budgets])
            ax.set_xlabel("budget (share of the corpus extracted)")
            ax.set_title(f"{name}: {title}", fontsize=10)
            ax.legend(fontsize=7, frameon=False)
            path = out_dir / f"{name}-{metric}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            paths.append(path)
    return paths

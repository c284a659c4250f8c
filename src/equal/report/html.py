"""``equal report``: one self-contained HTML file for a run (inline CSS and SVG, no script, no network).

Every text that comes from documents, pairs or the config goes through
Jinja's autoescaping; only the SVG charts, which this package draws from
numbers, are inserted as markup.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, select_autoescape

from equal.files import atomic_write_text
from equal.quality import CHECKS
from equal.report import charts
from equal.report.rundir import RunView
from equal.run.schema import QUALITY_PASSES, DocumentRecord

PAIRS_PER_DOCUMENT = 3
DOCUMENTS_PER_CLUSTER = 2


def _number(value: float | int) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3f}"
    return f"{int(value):,}"


def _cards(run: RunView) -> list[dict[str, str]]:
    s, c = run.summary, run.stats.counter
    extracted, passages = s.documents_extracted, s.corpus_passages or 1
    pairs = c("pairs_written")
    return [
        {"label": f"documents extracted ({100 * extracted / passages:.1f}% of {passages:,})",
         "value": f"{extracted:,}"},
        {"label": "LLM calls sent", "value": _number(c("llm_calls"))},
        {"label": "answers from cache", "value": _number(c("llm_cache_hits"))},
        {"label": "tokens in + out", "value": _number(s.tokens_spent)},
        {"label": "pairs written", "value": f"{pairs:,}"},
        {"label": "pairs per document", "value": f"{pairs / max(extracted, 1):.2f}"},
        {"label": "clusters", "value": _number(s.clusters)},
        {"label": "wall time, this run", "value": f"{s.wall_seconds:,.0f} s"},
        {"label": "LLM calls paid, finished runs here", "value": _number(run.stats.paid.llm_calls)},
        {"label": "wall time, finished runs here", "value": f"{run.stats.paid.seconds:,.0f} s"},
    ]


def _top(run: RunView) -> list[dict[str, Any]]:
    pairs_by_doc: dict[str, list] = {}
    for pair in run.pairs:
        pairs_by_doc.setdefault(pair.document_id, []).append(pair)
    docs_by_cluster: dict[int, list[DocumentRecord]] = {}
    for doc in run.documents:
        docs_by_cluster.setdefault(doc.cluster, []).append(doc)
    out = []
    for cluster in run.top_clusters():
        docs = sorted(docs_by_cluster.get(cluster.cluster, []),
                      key=lambda d: -len(pairs_by_doc.get(d.document_id, [])))[:DOCUMENTS_PER_CLUSTER]
        out.append({**cluster.to_json(),
                    "docs": [{**d.to_json(), "pairs": pairs_by_doc.get(d.document_id, [])[:PAIRS_PER_DOCUMENT]}
                             for d in docs]})
    return out


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a report table: this run's value and, when a baseline is given, the baseline's."""

    key: str
    value: str
    baseline: str | None = None


@dataclass(frozen=True, slots=True)
class ShareRow:
    """A label's documents in this run and, when a baseline is given, in the baseline."""

    label: str
    count: int
    share: float
    baseline_count: int | None = None
    baseline_share: float | None = None


@dataclass(frozen=True, slots=True)
class GradeRow:
    """Pairs written at one grade (or failing one cheap check)."""

    name: str
    count: int
    share: float


def _grades(run: RunView) -> tuple[list[GradeRow], list[GradeRow]]:
    """Pairs per grade (5 to 1) and per failed cheap check; empty for a data set written without grades."""
    grades = [p.provenance.grade for p in run.pairs if p.provenance is not None and p.provenance.grade is not None]
    if not grades:
        return [], []
    total = len(grades)
    by_grade = Counter(g.grade for g in grades)
    by_flag = Counter(f for g in grades for f in g.flags)
    llm = sum(g.source == "llm" for g in grades)
    rows = [GradeRow(f"{g}" + (" (LLM)" if llm == total else ""), by_grade.get(g, 0), by_grade.get(g, 0) / total)
            for g in (5, 4, 3, 2, 1)]
    return rows, [GradeRow(flag.replace("_", " "), by_flag[flag], by_flag[flag] / total) for flag in CHECKS
                  if by_flag.get(flag)]


def _cost_values(run: RunView) -> list[tuple[str, str]]:
    c, s = run.stats.counter, run.summary
    extracted = s.documents_extracted
    rows: list[tuple[str, str | int | float]] = [
        ("selection", run.selection), ("corpus passages", s.corpus_passages),
        ("reference examples", s.reference_examples), ("documents extracted", extracted),
        ("warm-up documents", s.warmup_documents), ("bandit rounds", c("rounds")),
        ("clusters per round x documents per pull", f"{s.clusters_per_round} x {s.docs_per_pull}"),
        ("LLM calls sent", c("llm_calls")), ("answers from cache", c("llm_cache_hits")),
        ("tokens in", c("tokens_in")), ("tokens out", c("tokens_out")),
        ("pairs written", c("pairs_written")), ("pairs per document", f"{c('pairs_written') / max(extracted, 1):.2f}"),
        ("answers cut at max_tokens", c("answers_at_max_tokens")),
        ("reward offset", s.reward_offset), ("UCB alpha", s.alpha)]
    for name in QUALITY_PASSES:  # the LLM passes over the pairs, when the run made them
        if c(f"{name}_calls") or c(f"{name}_cache_hits") or c(f"{name}_failed"):
            rows += [(f"{name} calls sent / from cache", f"{c(f'{name}_calls'):,} / {c(f'{name}_cache_hits'):,}"),
                     (f"{name} tokens in + out", c(f"{name}_tokens_in") + c(f"{name}_tokens_out"))]
    return [(k, v if isinstance(v, str) else _number(v)) for k, v in rows]


def _cost(run: RunView, baseline: RunView | None) -> list[Row]:
    """The cost table; with a baseline, its value of each row beside this run's."""
    if baseline is None:
        return [Row(k, v) for k, v in _cost_values(run)]
    theirs = dict(_cost_values(baseline))
    return [Row(k, v, theirs.get(k, "")) for k, v in _cost_values(run)]


def _shares(run: RunView, baseline: RunView | None) -> list[ShareRow]:
    """Documents per label, with the baseline's count and share of each label beside them."""
    mine, my_shares = run.summary.extracted_by_label or {}, run.label_shares()
    if baseline is None:
        return [ShareRow(label, mine[label], share) for label, share in my_shares.items()]
    theirs, their_shares = baseline.summary.extracted_by_label or {}, baseline.label_shares()
    labels = sorted(set(my_shares) | set(their_shares))
    return [ShareRow(label, mine.get(label, 0), my_shares.get(label, 0.0), theirs.get(label, 0),
                     their_shares.get(label, 0.0)) for label in labels]


def _problems(run: RunView) -> list[tuple[str, str]]:
    keys = sorted(k for k in run.counters if k.startswith(("skipped_", "llm_http", "llm_time", "llm_conn", "llm_mal",
                                                          "llm_empty", "llm_over", "llm_failed", "llm_retries",
                                                          "parse_", "pairs_decontaminated", "pulls_without",
                                                          "answers_at_max", "grade_failed", "grade_not_sent",
                                                          "grade_unparsed", "refine_failed", "refine_not_sent",
                                                          "refine_unparsed", "refine_decontaminated")))
    return [(k.replace("_", " "), _number(run.counters[k])) for k in keys if run.counters[k]]


def render_report(run: RunView, baseline: RunView | None = None) -> str:
    """The report's HTML text."""
    env = Environment(loader=PackageLoader("equal.report", "templates"), autoescape=select_autoescape(["j2", "html"]))
    grades, flags = _grades(run)
    return env.get_template("report.html.j2").render(
        title=run.run_dir.resolve().name, run_dir=str(run.run_dir), selection=run.selection,
        seed=run.config.get("seed", "?"), generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        cards=_cards(run), baseline=baseline.run_dir.name if baseline else None,
        charts={"cumulative": charts.cumulative_pairs(run, baseline), "rewards": charts.reward_per_round(run),
                "map": charts.cluster_map(run), "labels": charts.labels_over_calls(run, baseline)},
        baseline_selection=baseline.selection if baseline else None,
        shares=_shares(run, baseline), grades=grades, flags=flags, top=_top(run),
        cost=_cost(run, baseline), problems=_problems(run),
        config_yaml=yaml.safe_dump(run.config, sort_keys=False),
    )


def write_report(run: RunView, out: Path | None = None, baseline: RunView | None = None) -> Path:
    """Write ``report.html`` (or ``out``) and return its path."""
    path = out or run.run_dir / "report.html"
    atomic_write_text(path, render_report(run, baseline))
    return path

"""``equal inspect``: a run summarised in the terminal with rich."""

from __future__ import annotations

from collections import Counter

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from equal.records import QAPair
from equal.report.rundir import RunView


def inspect_run(run: RunView, console: Console | None = None, pairs: int = 3) -> None:
    """Print the run's cost, labels, top clusters, last rounds and a few pairs."""
    console = console or Console()
    s, c, paid = run.summary, run.stats.counter, run.stats.paid
    head = Table.grid(padding=(0, 2))
    extracted, passages = s.documents_extracted, max(s.corpus_passages, 1)
    for key, value in (
        ("selection", run.selection),
        ("documents extracted", f"{extracted:,} of {passages:,} ({100 * extracted / passages:.1f}%)"),
        ("LLM calls sent / from cache", f"{c('llm_calls'):,} / {c('llm_cache_hits'):,}"),
        ("tokens in + out", f"{s.tokens_spent:,}"),
        ("paid, finished runs here", f"{paid.llm_calls:,} calls, {paid.tokens:,} tokens, {paid.seconds:,.0f} s"),
        ("pairs written", f"{c('pairs_written'):,}"),
        ("pair grades 5/4/3/2/1", _grade_counts(run.pairs)),
        ("clusters, rounds", f"{s.clusters}, {c('rounds')}"),
        ("wall time, this run", f"{s.wall_seconds:,.0f} s"),
    ):
        head.add_row(f"[bold]{key}", str(value))
    parts: list = [head]
    if run.label_shares():
        labels = Table(title="extracted by label", title_justify="left")
        labels.add_column("label")
        labels.add_column("share", justify="right")
        for label, share in run.label_shares().items():
            labels.add_row(escape(label), f"{100 * share:.1f}%")
        parts.append(labels)
    top = Table(title="top clusters", title_justify="left")
    for column in ("cluster", "size", "pulls", "mean reward"):
        top.add_column(column, justify="right")
    for cluster in run.top_clusters():
        top.add_row(str(cluster.cluster), str(cluster.size), str(cluster.pulls), f"{cluster.mean_reward:.4f}")
    parts.append(top)
    if run.rounds:
        rounds = Table(title=f"last rounds (of {len(run.rounds)})", title_justify="left")
        for column in ("round", "clusters pulled", "pairs", "mean reward"):
            rounds.add_column(column, justify="right")
        for row in run.rounds[-5:]:
            rounds.add_row(str(row.round), " ".join(str(p.cluster) for p in row.pulls), str(row.pairs),
                           f"{row.mean_reward:.4f}")
        parts.append(rounds)
    for pair in sorted(run.pairs, key=lambda p: -(_reward(p) or 0))[:pairs]:
        # pair text is untrusted: escaped so "[...]" in it is shown, never read as rich markup
        parts.append(Panel(f"[bold]Q[/bold] {escape(pair.question)}\n[bold]A[/bold] {escape(pair.answer)}",
                           title=f"{escape(pair.document_id)} (reward {_reward(pair)}{_grade(pair)})",
                           title_align="left"))
    console.print(Panel(Group(*parts), title=f"equal run {run.run_dir}", title_align="left"))


def _grade_counts(pairs: list[QAPair]) -> str:
    """How many pairs have each grade, 5 to 1 (``-`` for a data set written without grades)."""
    grades = Counter(p.provenance.grade.grade for p in pairs if p.provenance is not None and p.provenance.grade)
    return "/".join(str(grades.get(g, 0)) for g in (5, 4, 3, 2, 1)) if grades else "-"


def _grade(pair: QAPair) -> str:
    """``, grade N`` and its failed checks, for a graded pair; empty otherwise."""
    grade = pair.provenance.grade if pair.provenance is not None else None
    if grade is None:
        return ""
    return f", grade {grade.grade}" + "".join(f", {escape(f)}" for f in grade.flags) + \
        (", refined" if pair.provenance is not None and pair.provenance.original else "")


def _reward(pair: QAPair) -> float | None:
    """The reward of the pull that paid for ``pair``; ``None`` for a pair without provenance."""
    return pair.provenance.pull_reward if pair.provenance is not None else None

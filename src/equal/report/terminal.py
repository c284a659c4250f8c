"""``equal inspect``: a run summarised in the terminal with rich."""

from __future__ import annotations

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from equal.report.rundir import RunView


def inspect_run(run: RunView, console: Console | None = None, pairs: int = 3) -> None:
    """Print the run's cost, labels, top clusters, last rounds and a few pairs."""
    console = console or Console()
    s, c = run.summary, run.counters
    head = Table.grid(padding=(0, 2))
    extracted, passages = s.get("documents_extracted", 0), max(s.get("corpus_passages", 0), 1)
    for key, value in (
        ("selection", run.selection),
        ("documents extracted", f"{extracted:,} of {passages:,} ({100 * extracted / passages:.1f}%)"),
        ("LLM calls sent / from cache", f"{c.get('llm_calls', 0):,} / {c.get('llm_cache_hits', 0):,}"),
        ("tokens in + out", f"{s.get('tokens_spent', 0):,}"),
        ("pairs written", f"{c.get('pairs_written', 0):,}"),
        ("clusters, rounds", f"{s.get('clusters', 0)}, {c.get('rounds', 0)}"),
        ("wall time", f"{s.get('wall_seconds', 0):,.0f} s"),
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
        top.add_row(str(cluster["cluster"]), str(cluster["size"]), str(cluster["pulls"]),
                    f"{cluster['mean_reward']:.4f}")
    parts.append(top)
    if run.rounds:
        rounds = Table(title=f"last rounds (of {len(run.rounds)})", title_justify="left")
        for column in ("round", "clusters pulled", "pairs", "mean reward"):
            rounds.add_column(column, justify="right")
        for row in run.rounds[-5:]:
            rewards = [p["reward"] for p in row["pulls"]]
            rounds.add_row(str(row["round"]), " ".join(str(p["cluster"]) for p in row["pulls"]),
                           str(sum(p["pairs"] for p in row["pulls"])), f"{sum(rewards) / len(rewards):.4f}")
        parts.append(rounds)
    for pair in sorted(run.pairs, key=lambda p: -float(p.metadata.get("pull_reward") or 0))[:pairs]:
        # pair text is untrusted: escaped so "[...]" in it is shown, never read as rich markup
        parts.append(Panel(f"[bold]Q[/bold] {escape(pair.question)}\n[bold]A[/bold] {escape(pair.answer)}",
                           title=f"{escape(pair.document_id)} (reward {pair.metadata.get('pull_reward')})",
                           title_align="left"))
    console.print(Panel(Group(*parts), title=f"equal run {run.run_dir}", title_align="left"))

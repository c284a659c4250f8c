"""``equal compare``: finished runs side by side: cost, pairs, and where the budget went by label."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from equal.errors import InputError
from equal.run.schema import RunStats, read_stats


@dataclass(frozen=True, slots=True)
class ComparedRun:
    """One run of a comparison, from its ``stats.json``."""

    run_dir: Path
    stats: RunStats

    @property
    def name(self) -> str:
        return self.run_dir.name

    def label_share(self, label: str) -> float | None:
        """The share of the documents extracted that had ``label``; ``None`` when the run has none of it."""
        by_label = self.stats.summary.extracted_by_label or {}
        if label not in by_label:
            return None
        return by_label[label] / max(1, sum(by_label.values()))


@dataclass(frozen=True, slots=True)
class Comparison:
    """Finished runs side by side.

    Attributes:
        runs: the runs, in the order given.
        relevant: the label that counts as relevant, if any.
    """

    runs: list[ComparedRun]
    relevant: str | None = None

    @property
    def labels(self) -> list[str]:
        """Every label any run extracted, sorted."""
        return sorted({label for r in self.runs for label in (r.stats.summary.extracted_by_label or {})})

    def relevant_shares(self) -> list[float | None]:
        """Each run's share of documents with the relevant label (``None`` without one)."""
        return [r.label_share(self.relevant) if self.relevant is not None else None for r in self.runs]

    def rows(self) -> list[tuple[str, list[str]]]:
        """The table: a row name and one cell per run (empty where a run has no such label)."""
        rows: list[tuple[str, list[str]]] = [
            ("corpus passages", [str(r.stats.summary.corpus_passages) for r in self.runs]),
            ("documents extracted", [str(r.stats.summary.documents_extracted) for r in self.runs]),
            ("LLM calls sent", [str(r.stats.counter("llm_calls")) for r in self.runs]),
            ("LLM answers from cache", [str(r.stats.counter("llm_cache_hits")) for r in self.runs]),
            ("tokens (in + out)", [str(r.stats.summary.tokens_spent) for r in self.runs]),
            ("pairs written", [str(r.stats.counter("pairs_written")) for r in self.runs]),
            ("wall seconds", [str(r.stats.summary.wall_seconds) for r in self.runs]),
        ]
        for label in self.labels:
            marker = " (relevant)" if label == self.relevant else ""
            shares = [r.label_share(label) for r in self.runs]
            rows.append((f"share {label}{marker}", ["" if s is None else f"{s:.1%}" for s in shares]))
        return rows


def compare_runs(run_dirs: Iterable[str | Path], relevant: str | None = None) -> Comparison:
    """Load the ``stats.json`` of each finished run.

    Raises:
        InputError: a directory is not a finished run, its ``stats.json`` is damaged, or no
            run has the ``relevant`` label (the message lists the labels they have).
    """
    comparison = Comparison([ComparedRun(Path(d), read_stats(Path(d))) for d in run_dirs], relevant)
    if relevant is not None and relevant not in comparison.labels:
        known = ", ".join(comparison.labels) or "none (the runs had no corpus.label_field)"
        raise InputError(f"no run extracted a document labelled {relevant!r}; the labels of these runs: {known}")
    return comparison

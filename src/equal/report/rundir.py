"""Reading a finished run directory back: what the report, ``inspect`` and ``export`` show."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from equal.errors import InputError
from equal.output.formats import read_dataset
from equal.records import QAPair


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class RunView:
    """Everything a finished run wrote, loaded."""

    run_dir: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    counters: dict[str, Any]
    rounds: list[dict[str, Any]]
    clusters: list[dict[str, Any]]
    pairs: list[QAPair]
    documents: list[dict[str, Any]] = field(default_factory=list)
    centroids: np.ndarray | None = None

    @property
    def selection(self) -> str:
        return str(self.config.get("bandit", {}).get("selection", "equal"))

    def cumulative_pairs(self) -> tuple[list[int], list[int]]:
        """(extraction calls, pairs so far) after the warm-up and after each bandit round."""
        warm_docs = int(self.summary.get("warmup_documents", 0))
        warm_pairs = sum(1 for p in self.pairs if p.metadata.get("stage") == "warmup")
        calls, pairs = [0, warm_docs], [0, warm_pairs]
        for row in self.rounds:
            calls.append(int(row["documents_spent"]))
            pairs.append(pairs[-1] + sum(int(p["pairs"]) for p in row["pulls"]))
        return calls, pairs

    def top_clusters(self, n: int = 5) -> list[dict[str, Any]]:
        """The pulled clusters with the highest mean reward."""
        pulled = [c for c in self.clusters if c["pulls"] > 0]
        return sorted(pulled, key=lambda c: (-c["mean_reward"], c["cluster"]))[:n]

    def label_shares(self) -> dict[str, float]:
        by_label = self.summary.get("extracted_by_label") or {}
        total = sum(by_label.values())
        return {str(k): v / total for k, v in sorted(by_label.items())} if total else {}


def load_run(run_dir: str | Path) -> RunView:
    """Load a finished run.

    Raises:
        InputError: ``run_dir`` is not a finished run (no ``stats.json``).
    """
    run_dir = Path(run_dir)
    stats_path = run_dir / "stats.json"
    if not stats_path.exists():
        raise InputError(f"{run_dir} has no stats.json; give the directory of a finished `equal run` "
                         "(a run that was stopped resumes when you run its command again)")
    stats = json.loads(stats_path.read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else {}
    clusters = json.loads((run_dir / "clusters.json").read_text()) if (run_dir / "clusters.json").exists() else []
    centroids = np.load(run_dir / "centroids.npy") if (run_dir / "centroids.npy").exists() else None
    return RunView(run_dir=run_dir, config=config or {}, summary=stats.get("summary", {}),
                   counters=stats.get("counters", {}), rounds=_jsonl(run_dir / "rounds.jsonl"),
                   clusters=clusters, pairs=read_dataset(run_dir), documents=_jsonl(run_dir / "documents.jsonl"),
                   centroids=centroids)

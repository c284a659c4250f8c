"""Reading a finished run directory back: what the report, ``inspect``, ``export`` and ``compare`` show.

Each reader refuses a directory whose run did not finish (see
:mod:`equal.run.directory`), and a damaged file is an error that names it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from equal.errors import InputError
from equal.output.formats import read_dataset, read_jsonl
from equal.records import QAPair
from equal.run.directory import FINISHED, require_finished

_DAMAGED = "the file is damaged: restore it, or run the `equal run` command again to rewrite it"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for number, row in read_jsonl(path):
        if not isinstance(row, dict):
            raise InputError(f"{path}, line {number}: not a JSON object; {_DAMAGED}")
        rows.append(row)
    return rows


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start}); {_DAMAGED}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); "
                         f"{_DAMAGED}") from None


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


def load_stats(run_dir: str | Path) -> dict[str, Any]:
    """The ``stats.json`` of a finished run: ``{"counters": {...}, "summary": {...}}``.

    Raises:
        InputError: ``run_dir`` is not a finished run, or its ``stats.json`` is damaged.
    """
    run_dir = Path(run_dir)
    require_finished(run_dir)
    path = run_dir / FINISHED
    stats = _json(path)
    if not isinstance(stats, dict) or not all(isinstance(stats.get(k, {}), dict) for k in ("counters", "summary")):
        raise InputError(f"{path} does not hold a run's counters and summary; {_DAMAGED}")
    return stats


def load_pairs(run_dir: str | Path) -> list[QAPair]:
    """The pairs of a finished run's data set (``stats.json`` is not read).

    Raises:
        InputError: ``run_dir`` is not a finished run, or its data set is damaged.
    """
    run_dir = Path(run_dir)
    require_finished(run_dir)
    return read_dataset(run_dir)


def load_run(run_dir: str | Path) -> RunView:
    """Load a finished run.

    Raises:
        InputError: ``run_dir`` is not a finished run (no ``stats.json``: stopped,
            failed or still running), or one of its files is damaged; the
            message names the file.
    """
    run_dir = Path(run_dir)
    stats = load_stats(run_dir)
    config: Any = {}
    if (run_dir / "config.yaml").exists():
        try:
            config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InputError(f"{run_dir / 'config.yaml'} cannot be read ({exc}); {_DAMAGED}") from None
        if config is not None and not isinstance(config, dict):
            raise InputError(f"{run_dir / 'config.yaml'} does not hold a configuration; {_DAMAGED}")
    clusters = _json(run_dir / "clusters.json") if (run_dir / "clusters.json").exists() else []
    centroids = None
    if (run_dir / "centroids.npy").exists():
        try:
            centroids = np.load(run_dir / "centroids.npy")
        except (OSError, ValueError) as exc:
            raise InputError(f"{run_dir / 'centroids.npy'} cannot be read ({exc}); {_DAMAGED}") from None
    return RunView(run_dir=run_dir, config=config or {}, summary=stats.get("summary", {}),
                   counters=stats.get("counters", {}), rounds=_jsonl(run_dir / "rounds.jsonl"),
                   clusters=clusters, pairs=read_dataset(run_dir), documents=_jsonl(run_dir / "documents.jsonl"),
                   centroids=centroids)

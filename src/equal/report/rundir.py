"""Reading a finished run directory back: what the report, ``inspect``, ``export`` and ``compare`` show.

Every file is read through the records of :mod:`equal.run.schema`. Each
reader refuses a directory whose run did not finish (see
:mod:`equal.run.directory`), and a damaged file is an error that names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from equal.errors import InputError
from equal.output.formats import read_dataset
from equal.records import QAPair
from equal.run.directory import CENTROIDS, CONFIG, require_finished
from equal.run.schema import (
    DAMAGED,
    ClusterRecord,
    DocumentRecord,
    RoundRecord,
    RunStats,
    Summary,
    read_clusters,
    read_documents,
    read_rounds,
    read_stats,
)


@dataclass(frozen=True, slots=True)
class RunView:
    """Everything a finished run wrote, loaded.

    ``config`` is ``config.yaml`` as saved (a mapping, not validated: a run of
    an older equal may hold keys this one no longer has).
    """

    run_dir: Path
    config: dict[str, Any]
    stats: RunStats
    rounds: list[RoundRecord]
    clusters: list[ClusterRecord]
    pairs: list[QAPair]
    documents: list[DocumentRecord]
    centroids: np.ndarray | None = None

    @property
    def summary(self) -> Summary:
        return self.stats.summary

    @property
    def counters(self) -> dict[str, int | float]:
        return self.stats.counters

    @property
    def selection(self) -> str:
        return str((self.config.get("bandit") or {}).get("selection", "equal"))

    def cumulative_pairs(self) -> tuple[list[int], list[int]]:
        """(extraction calls, pairs so far) after the warm-up and after each bandit round."""
        warm_pairs = sum(1 for p in self.pairs if p.provenance is not None and p.provenance.stage == "warmup")
        calls, pairs = [0, self.summary.warmup_documents], [0, warm_pairs]
        for row in self.rounds:
            calls.append(row.documents_spent)
            pairs.append(pairs[-1] + row.pairs)
        return calls, pairs

    def top_clusters(self, n: int = 5) -> list[ClusterRecord]:
        """The pulled clusters with the highest mean reward."""
        pulled = [c for c in self.clusters if c.pulls > 0]
        return sorted(pulled, key=lambda c: (-c.mean_reward, c.cluster))[:n]

    def label_shares(self) -> dict[str, float]:
        return self.summary.label_shares()


def load_stats(run_dir: str | Path) -> RunStats:
    """The ``stats.json`` of a finished run.

    Raises:
        InputError: ``run_dir`` is not a finished run, or its ``stats.json`` is damaged.
    """
    return read_stats(Path(run_dir))


def load_pairs(run_dir: str | Path) -> list[QAPair]:
    """The pairs of a finished run's data set (``stats.json`` is not read).

    Raises:
        InputError: ``run_dir`` is not a finished run, or its data set is damaged.
    """
    run_dir = Path(run_dir)
    require_finished(run_dir)
    return read_dataset(run_dir)


def _config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG
    if not path.exists():
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path} cannot be read ({exc}); {DAMAGED}") from None
    if config is not None and not isinstance(config, dict):
        raise InputError(f"{path} does not hold a configuration; {DAMAGED}")
    return config or {}


def _centroids(run_dir: Path) -> np.ndarray | None:
    path = run_dir / CENTROIDS
    if not path.exists():
        return None
    try:
        return np.load(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} cannot be read ({exc}); {DAMAGED}") from None


def load_run(run_dir: str | Path) -> RunView:
    """Load a finished run.

    Raises:
        InputError: ``run_dir`` is not a finished run (no ``stats.json``: stopped,
            failed or still running), or one of its files is damaged; the
            message names the file.
    """
    run_dir = Path(run_dir)
    stats = read_stats(run_dir)
    config, clusters, centroids = _config(run_dir), read_clusters(run_dir), _centroids(run_dir)
    return RunView(run_dir=run_dir, config=config, stats=stats, rounds=read_rounds(run_dir), clusters=clusters,
                   pairs=read_dataset(run_dir), documents=read_documents(run_dir), centroids=centroids)

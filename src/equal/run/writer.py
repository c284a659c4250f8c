"""What a finished run writes: the data set with provenance, the documents, clusters, logs and stats.

Every file goes through the records of :mod:`equal.run.schema`; ``stats.json``
goes last, its presence marking a finished run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from equal.bandit import ClusterArms
from equal.corpus.store import PassageStore
from equal.files import atomic_file
from equal.output import write_dataset
from equal.records import Document, Provenance, Pull, QAPair
from equal.run.directory import CENTROIDS
from equal.run.rounds import PlayedRound
from equal.run.schema import (
    ClusterRecord,
    DocumentRecord,
    ParseFailure,
    PullRecord,
    RemovedPair,
    RoundRecord,
    RunStats,
    write_clusters,
    write_documents,
    write_parse_failures,
    write_removed_pairs,
    write_stats,
)

DOCUMENT_SNIPPET_CHARS = 600  # of each extracted document, kept in documents.jsonl for the report


def with_provenance(pulls: Sequence[Pull], documents: Sequence[Document], labels: np.ndarray,
                    label_field: str | None) -> list[QAPair]:
    """Every pair paid for, warm-up first, each a copy carrying its :class:`~equal.records.Provenance`."""
    index = positions(documents, (pair.document_id for pull in pulls for pair in pull.pairs))
    out = []
    for pull in pulls:
        for pair in pull.pairs:
            i = index[pair.document_id]
            doc = documents[i]
            provenance = Provenance(doc.source_id, int(labels[i]), pull.round, round(pull.reward, 6), pull.stage,
                                    doc.metadata.get(label_field) if label_field else None, bool(label_field))
            out.append(replace(pair, provenance=provenance))
    return out


def document_records(pulls: Sequence[Pull], documents: Sequence[Document], labels: np.ndarray,
                     label_field: str | None) -> list[DocumentRecord]:
    """Each extracted document in the order of extraction, its text cut to :data:`DOCUMENT_SNIPPET_CHARS`."""
    index = positions(documents, (doc_id for pull in pulls for doc_id in pull.document_ids))
    out = []
    for pull in pulls:
        for doc_id in pull.document_ids:
            i = index[doc_id]
            doc = documents[i]
            out.append(DocumentRecord(doc_id, int(labels[i]), pull.round, pull.stage, round(pull.reward, 6),
                                      doc.metadata.get(label_field) if label_field else None,
                                      doc.text[:DOCUMENT_SNIPPET_CHARS]))
    return out


def positions(documents: Sequence[Document], ids: Iterable[str]) -> dict[str, int]:
    """The corpus index of each of ``ids``: asked of the passage store, so no map of every id is built."""
    if isinstance(documents, PassageStore):
        return documents.positions(ids)
    wanted = set(ids)
    return {d.id: i for i, d in enumerate(documents) if d.id in wanted}


def round_record(played: PlayedRound) -> RoundRecord:
    """A round's line in ``rounds.jsonl``."""
    return RoundRecord(played.round, [PullRecord(p.cluster, p.document_ids, len(p.pairs), p.distance, p.reward)
                                      for p in played.pulls],
                       played.budget.documents, played.budget.tokens, played.best_clusters)


def cluster_records(arms: ClusterArms) -> list[ClusterRecord]:
    """Each cluster at the end of the run."""
    mean = arms.mean_reward()
    return [ClusterRecord(c, int(arms.sizes[c]), int(arms.pulls[c]), float(arms.count[c]), float(mean[c]),
                          [int(j) for j in arms.neighbours[c]]) for c in range(arms.n_arms)]


def write_run(run_dir: Path, *, pairs: list[QAPair], dataset_format: str, documents: list[DocumentRecord],
              centroids: np.ndarray, failures: list[ParseFailure], removed: list[RemovedPair],
              clusters: list[ClusterRecord], stats: RunStats) -> Path:
    """Write every output of a finished run, ``stats.json`` last; returns the data set's path."""
    dataset_path = write_dataset(pairs, run_dir, dataset_format)
    write_documents(run_dir, documents)
    with atomic_file(run_dir / CENTROIDS) as tmp, tmp.open("wb") as f:
        np.save(f, centroids.astype(np.float32))
    write_parse_failures(run_dir, failures)
    write_removed_pairs(run_dir, removed)
    write_clusters(run_dir, clusters)
    write_stats(run_dir, stats)  # last, synced: its presence marks a finished run
    return dataset_path

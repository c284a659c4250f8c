"""The files of a run directory as typed records: what ``equal run`` writes and every reader reads.

Each file has one record type; its ``to_json`` (what the writer puts on disk)
and ``from_json`` (what readers get back, every value's type checked) are read
off its fields by :mod:`equal.codec`, so a key is named once and a renamed
field is a type error or a failed test, never an empty report column:

==========================  ======================================================
``rounds.jsonl``            one :class:`RoundRecord` a line (its :class:`PullRecord` s)
``clusters.json``           a list of :class:`ClusterRecord`
``documents.jsonl``         one :class:`DocumentRecord` a line
``stats.json``              :class:`RunStats`: counters and a :class:`Summary`; written last
``parse_failures.jsonl``    one :class:`ParseFailure` a line
``decontaminated.jsonl``    one :class:`RemovedPair` a line
``dataset.jsonl``           pairs with their :class:`equal.records.Provenance` (:mod:`equal.output.formats`)
==========================  ======================================================

``from_json`` raises ``ValueError`` naming the key at fault; the ``read_*``
functions turn that into an :class:`~equal.errors.InputError` naming the file
and line, and refuse a run that did not finish (see :mod:`equal.run.directory`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from equal.codec import JsonRecord, json_key
from equal.errors import InputError
from equal.files import atomic_write_jsonl, atomic_write_text
from equal.output.formats import DAMAGED, read_records
from equal.records import Stage
from equal.run.directory import (
    CLUSTERS,
    DECONTAMINATED,
    DOCUMENTS,
    FINISHED,
    PARSE_FAILURES,
    ROUNDS,
    require_finished,
)

Number = int | float


# -- rounds.jsonl --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PullRecord(JsonRecord):
    """One pull of a round: the cluster, its documents, how many pairs they gave, their distance and reward.

    ``distance`` is ``None`` for a pull that gave no pair.
    """

    cluster: int
    documents: list[str]
    pairs: int
    distance: float | None
    reward: float


@dataclass(frozen=True, slots=True)
class RoundRecord(JsonRecord):
    """One bandit round, a line of ``rounds.jsonl``: its pulls, the budget spent so far, the five best clusters."""

    round: int
    pulls: list[PullRecord]
    documents_spent: int
    tokens_spent: int
    best_clusters: list[int]

    @property
    def pairs(self) -> int:
        """Pairs the round's pulls gave."""
        return sum(p.pairs for p in self.pulls)

    @property
    def mean_reward(self) -> float:
        return sum(p.reward for p in self.pulls) / len(self.pulls) if self.pulls else math.nan


class RoundLog:
    """``rounds.jsonl`` as the rounds are played: one line a round, flushed, so a killed run keeps its rounds."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file

    def write(self, record: RoundRecord) -> None:
        self._file.write(json.dumps(record.to_json()) + "\n")
        self._file.flush()


@contextmanager
def round_log(run_dir: Path) -> Iterator[RoundLog]:
    """Open ``rounds.jsonl`` afresh (an earlier run's rounds are dropped) for the rounds of this run."""
    with (run_dir / ROUNDS).open("w") as f:
        yield RoundLog(f)


# -- clusters.json -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterRecord(JsonRecord):
    """One cluster at the end of a run: its size, pulls, reward count ``c_j``, mean reward and neighbours."""

    cluster: int
    size: int
    pulls: int
    count: float
    mean_reward: float
    neighbours: list[int]


# -- documents.jsonl -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentRecord(JsonRecord):
    """One extracted document, in the order of extraction: where it was pulled, its label, its text cut short.

    ``label`` is always written (``null`` without a label field); a line without it reads as ``None``.
    """

    document_id: str
    cluster: int
    round: int
    stage: Stage
    pull_reward: float
    label: Any = field(metadata=json_key(when_missing=None))
    text: str


# -- parse_failures.jsonl and decontaminated.jsonl -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParseFailure(JsonRecord):
    """An LLM answer that was not the JSON asked for (or no answer at all), kept raw."""

    document_id: str
    error: str
    raw: str


@dataclass(frozen=True, slots=True)
class RemovedPair(JsonRecord):
    """A pair dropped before its reward for copying the reference set or an evaluation set."""

    document_id: str
    question: str
    answer: str
    reason: str


# -- stats.json ----------------------------------------------------------------------------------------------------


#: the LLM passes over written pairs (``quality.llm_grade``, ``quality.refine``): their counters' prefixes
QUALITY_PASSES = ("grade", "refine")


@dataclass(frozen=True, slots=True)
class Paid(JsonRecord):
    """What the LLM answers of a run directory cost, over every run in it that finished.

    A rerun replays its answers from the cache and sends few or no calls itself;
    this keeps what the answers cost when they were first paid for. A run that
    was killed before it finished is not in it (its answers are in the cache,
    and count as cache hits of the run that finishes).
    """

    llm_calls: int
    tokens: int
    seconds: float

    def __add__(self, other: Paid) -> Paid:
        return Paid(self.llm_calls + other.llm_calls, self.tokens + other.tokens,
                    round(self.seconds + other.seconds, 2))

    @classmethod
    def of_attempt(cls, counters: Mapping[str, Number], seconds: float) -> Paid:
        """What one run itself sent, and its wall time: the extraction's ``llm_calls`` and the quality passes'
        ``grade_calls`` and ``refine_calls``, and the tokens in + out each counted (answers from the cache are
        not paid again)."""
        def count(key: str) -> int:
            return int(counters.get(key, 0))
        passes = [f"{name}_" for name in QUALITY_PASSES]
        calls = count("llm_calls") + sum(count(f"{p}calls") for p in passes)
        tokens = sum(count(f"{p}tokens_in") + count(f"{p}tokens_out") for p in ["", *passes])
        return cls(calls, tokens, seconds)


@dataclass(frozen=True, slots=True)
class Summary(JsonRecord):
    """What a run did, in a few numbers: the ``summary`` of ``stats.json``.

    ``extracted_by_label`` (documents extracted per ``corpus.label_field``
    value) is ``None`` when the run had no label field. ``paid`` is what the
    directory's answers cost over every finished run in it (``None`` in a
    ``stats.json`` written before it was kept). ``stage_seconds`` is where this
    run's wall time went, by stage (``rounds/reward/embed pairs`` is part of
    ``rounds/reward``); ``None`` in an older ``stats.json``. The three are
    left out of the file while they are ``None``.
    """

    corpus_passages: int
    reference_examples: int
    clusters: int
    clusters_per_round: int
    docs_per_pull: int
    warmup_documents: int
    reward_offset: float
    alpha: float
    documents_extracted: int
    tokens_spent: int
    wall_seconds: float
    extracted_by_label: dict[str, int] | None = field(
        default=None, metadata=json_key(omit_none=True, what="an object of counts"))
    paid: Paid | None = field(default=None, metadata=json_key(omit_none=True, what="an object"))
    stage_seconds: dict[str, float] | None = field(
        default=None, metadata=json_key(omit_none=True, what="an object of seconds"))

    def label_shares(self) -> dict[str, float]:
        """Each label's share of the documents extracted, by label; empty without labels."""
        by_label = self.extracted_by_label or {}
        total = sum(by_label.values())
        return {str(k): v / total for k, v in sorted(by_label.items())} if total else {}


@dataclass(frozen=True, slots=True)
class RunStats(JsonRecord):
    """``stats.json``: every counter of the run (skips by reason, LLM calls, tokens, ...) and its summary."""

    counters: dict[str, Number] = field(metadata=json_key(what="an object of counts"))
    summary: Summary

    def counter(self, name: str) -> Number:
        """A counter's value; 0 for one the run never bumped."""
        return self.counters.get(name, 0)

    @property
    def paid(self) -> Paid:
        """What the directory's answers cost; for a ``stats.json`` that predates it, what this run sent."""
        return self.summary.paid or Paid.of_attempt(self.counters, self.summary.wall_seconds)


# -- writing -------------------------------------------------------------------------------------------------------


def write_clusters(run_dir: Path, clusters: Iterable[ClusterRecord]) -> None:
    atomic_write_text(run_dir / CLUSTERS, json.dumps([c.to_json() for c in clusters], indent=1))


def write_documents(run_dir: Path, documents: Iterable[DocumentRecord]) -> None:
    atomic_write_jsonl(run_dir / DOCUMENTS, (d.to_json() for d in documents))


def write_parse_failures(run_dir: Path, failures: Iterable[ParseFailure]) -> None:
    atomic_write_jsonl(run_dir / PARSE_FAILURES, (f.to_json() for f in failures))


def write_removed_pairs(run_dir: Path, removed: Iterable[RemovedPair]) -> None:
    atomic_write_jsonl(run_dir / DECONTAMINATED, (r.to_json() for r in removed))


def write_stats(run_dir: Path, stats: RunStats) -> None:
    """``stats.json``, synced: write it last, its presence marks a finished run."""
    atomic_write_text(run_dir / FINISHED, json.dumps(stats.to_json(), indent=2, sort_keys=True))


# -- reading -------------------------------------------------------------------------------------------------------

def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start}); {DAMAGED}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); "
                         f"{DAMAGED}") from None


def read_stats(run_dir: Path) -> RunStats:
    """The ``stats.json`` of a finished run.

    Raises:
        InputError: ``run_dir`` is not a finished run, or its ``stats.json`` is damaged.
    """
    require_finished(run_dir)
    path = run_dir / FINISHED
    try:
        return RunStats.from_json(_json(path))
    except ValueError as exc:
        raise InputError(f"{path} does not hold a run's counters and summary ({exc}); {DAMAGED}") from None


def read_rounds(run_dir: Path) -> list[RoundRecord]:
    """The rounds of ``rounds.jsonl`` (none when the file is missing)."""
    return read_records(run_dir / ROUNDS, RoundRecord.from_json, DAMAGED)


def read_documents(run_dir: Path) -> list[DocumentRecord]:
    """The extracted documents of ``documents.jsonl``, in the order of extraction (none when missing)."""
    return read_records(run_dir / DOCUMENTS, DocumentRecord.from_json, DAMAGED)


def read_parse_failures(run_dir: Path) -> list[ParseFailure]:
    return read_records(run_dir / PARSE_FAILURES, ParseFailure.from_json, DAMAGED)


def read_removed_pairs(run_dir: Path) -> list[RemovedPair]:
    return read_records(run_dir / DECONTAMINATED, RemovedPair.from_json, DAMAGED)


def read_clusters(run_dir: Path) -> list[ClusterRecord]:
    """The clusters of ``clusters.json`` (none when the file is missing)."""
    path = run_dir / CLUSTERS
    if not path.exists():
        return []
    rows = _json(path)
    if not isinstance(rows, list):
        raise InputError(f"{path} does not hold a list of clusters; {DAMAGED}")
    out = []
    for number, row in enumerate(rows, 1):
        try:
            out.append(ClusterRecord.from_json(row))
        except ValueError as exc:
            raise InputError(f"{path}, cluster entry {number}: {exc}; {DAMAGED}") from None
    return out

"""The files of a run directory as typed records: what ``equal run`` writes and every reader reads.

Each file has one record type with ``to_json`` (what the writer puts on disk,
key for key) and ``from_json`` (what readers get back), so a key renamed on
one side is a type error or a failed test, never an empty report column:

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from equal.errors import InputError
from equal.files import atomic_write_jsonl, atomic_write_text
from equal.output.formats import DAMAGED, read_records
from equal.records import STAGES, Stage
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


# -- checked access to a JSON object's keys -----------------------------------------------------------------------


def _get(row: Mapping[str, Any], key: str, check: Callable[[Any], bool], what: str) -> Any:
    if not isinstance(row, Mapping):
        raise ValueError(f"not a JSON object (a {type(row).__name__})")
    if key not in row:
        raise ValueError(f"no {key!r}")
    value = row[key]
    if not check(value):
        raise ValueError(f"{key!r} is not {what}: {value!r}")
    return value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(row: Mapping[str, Any], key: str) -> int:
    return int(_get(row, key, _is_int, "an integer"))


def _number(row: Mapping[str, Any], key: str) -> Number:
    value: Number = _get(row, key, _is_number, "a number")
    return value


def _float(row: Mapping[str, Any], key: str) -> float:
    return float(_number(row, key))


def _str(row: Mapping[str, Any], key: str) -> str:
    return str(_get(row, key, lambda v: isinstance(v, str), "a string"))


def _ints(row: Mapping[str, Any], key: str) -> list[int]:
    return list(_get(row, key, lambda v: isinstance(v, list) and all(map(_is_int, v)), "a list of integers"))


def _strs(row: Mapping[str, Any], key: str) -> list[str]:
    return list(_get(row, key, lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                     "a list of strings"))


def _stage(row: Mapping[str, Any], key: str) -> Stage:
    stage: Stage = _get(row, key, lambda v: v in STAGES, f"one of {', '.join(STAGES)}")
    return stage


# -- rounds.jsonl --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PullRecord:
    """One pull of a round: the cluster, its documents, how many pairs they gave, their distance and reward.

    ``distance`` is ``None`` for a pull that gave no pair.
    """

    cluster: int
    documents: list[str]
    pairs: int
    distance: float | None
    reward: float

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "documents": self.documents, "pairs": self.pairs,
                "distance": self.distance, "reward": self.reward}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> PullRecord:
        cluster, documents, pairs = _int(row, "cluster"), _strs(row, "documents"), _int(row, "pairs")
        distance = _get(row, "distance", lambda v: v is None or _is_number(v), "a number or null")
        return cls(cluster, documents, pairs, None if distance is None else float(distance), _float(row, "reward"))


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """One bandit round, a line of ``rounds.jsonl``: its pulls, the budget spent so far, the five best clusters."""

    round: int
    pulls: list[PullRecord]
    documents_spent: int
    tokens_spent: int
    best_clusters: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"round": self.round, "pulls": [p.to_json() for p in self.pulls],
                "documents_spent": self.documents_spent, "tokens_spent": self.tokens_spent,
                "best_clusters": self.best_clusters}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> RoundRecord:
        pulls = _get(row, "pulls", lambda v: isinstance(v, list), "a list")
        return cls(_int(row, "round"), [PullRecord.from_json(p) for p in pulls], _int(row, "documents_spent"),
                   _int(row, "tokens_spent"), _ints(row, "best_clusters"))

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
class ClusterRecord:
    """One cluster at the end of a run: its size, pulls, reward count ``c_j``, mean reward and neighbours."""

    cluster: int
    size: int
    pulls: int
    count: float
    mean_reward: float
    neighbours: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "size": self.size, "pulls": self.pulls, "count": self.count,
                "mean_reward": self.mean_reward, "neighbours": self.neighbours}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> ClusterRecord:
        return cls(_int(row, "cluster"), _int(row, "size"), _int(row, "pulls"), _float(row, "count"),
                   _float(row, "mean_reward"), _ints(row, "neighbours"))


# -- documents.jsonl -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """One extracted document, in the order of extraction: where it was pulled, its label, its text cut short."""

    document_id: str
    cluster: int
    round: int
    stage: Stage
    pull_reward: float
    label: Any
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"document_id": self.document_id, "cluster": self.cluster, "round": self.round, "stage": self.stage,
                "pull_reward": self.pull_reward, "label": self.label, "text": self.text}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> DocumentRecord:
        return cls(_str(row, "document_id"), _int(row, "cluster"), _int(row, "round"), _stage(row, "stage"),
                   _float(row, "pull_reward"), row.get("label"), _str(row, "text"))


# -- parse_failures.jsonl and decontaminated.jsonl -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """An LLM answer that was not the JSON asked for (or no answer at all), kept raw."""

    document_id: str
    error: str
    raw: str

    def to_json(self) -> dict[str, Any]:
        return {"document_id": self.document_id, "error": self.error, "raw": self.raw}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> ParseFailure:
        return cls(_str(row, "document_id"), _str(row, "error"), _str(row, "raw"))


@dataclass(frozen=True, slots=True)
class RemovedPair:
    """A pair dropped before its reward for copying the reference set or an evaluation set."""

    document_id: str
    question: str
    answer: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"document_id": self.document_id, "question": self.question, "answer": self.answer,
                "reason": self.reason}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> RemovedPair:
        return cls(_str(row, "document_id"), _str(row, "question"), _str(row, "answer"), _str(row, "reason"))


# -- stats.json ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Paid:
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

    def to_json(self) -> dict[str, Any]:
        return {"llm_calls": self.llm_calls, "tokens": self.tokens, "seconds": self.seconds}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Paid:
        return cls(_int(row, "llm_calls"), _int(row, "tokens"), _float(row, "seconds"))

    @classmethod
    def of_attempt(cls, counters: Mapping[str, Number], seconds: float) -> Paid:
        """What one run itself sent: its ``llm_calls``, ``tokens_in`` + ``tokens_out`` and wall time."""
        return cls(int(counters.get("llm_calls", 0)),
                   int(counters.get("tokens_in", 0)) + int(counters.get("tokens_out", 0)), seconds)


@dataclass(frozen=True, slots=True)
class Summary:
    """What a run did, in a few numbers: the ``summary`` of ``stats.json``.

    ``extracted_by_label`` (documents extracted per ``corpus.label_field``
    value) is ``None`` when the run had no label field. ``paid`` is what the
    directory's answers cost over every finished run in it (``None`` in a
    ``stats.json`` written before it was kept). ``stage_seconds`` is where this
    run's wall time went, by stage (``rounds/reward/embed pairs`` is part of
    ``rounds/reward``); ``None`` in an older ``stats.json``.
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
    extracted_by_label: dict[str, int] | None = None
    paid: Paid | None = None
    stage_seconds: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "corpus_passages": self.corpus_passages, "reference_examples": self.reference_examples,
            "clusters": self.clusters, "clusters_per_round": self.clusters_per_round,
            "docs_per_pull": self.docs_per_pull, "warmup_documents": self.warmup_documents,
            "reward_offset": self.reward_offset, "alpha": self.alpha,
            "documents_extracted": self.documents_extracted, "tokens_spent": self.tokens_spent,
            "wall_seconds": self.wall_seconds,
        }
        if self.extracted_by_label is not None:
            out["extracted_by_label"] = self.extracted_by_label
        if self.paid is not None:
            out["paid"] = self.paid.to_json()
        if self.stage_seconds is not None:
            out["stage_seconds"] = self.stage_seconds
        return out

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Summary:
        by_label = row.get("extracted_by_label") if isinstance(row, Mapping) else None
        if by_label is not None and not (isinstance(by_label, dict) and all(map(_is_int, by_label.values()))):
            raise ValueError(f"'extracted_by_label' is not an object of counts: {by_label!r}")
        stages = row.get("stage_seconds")
        if stages is not None and not (isinstance(stages, dict) and all(_is_number(v) for v in stages.values())):
            raise ValueError(f"'stage_seconds' is not an object of seconds: {stages!r}")
        return cls(_int(row, "corpus_passages"), _int(row, "reference_examples"), _int(row, "clusters"),
                   _int(row, "clusters_per_round"), _int(row, "docs_per_pull"), _int(row, "warmup_documents"),
                   _float(row, "reward_offset"), _float(row, "alpha"), _int(row, "documents_extracted"),
                   _int(row, "tokens_spent"), _float(row, "wall_seconds"), by_label,
                   Paid.from_json(_get(row, "paid", lambda v: isinstance(v, dict), "an object"))
                   if row.get("paid") is not None else None, stages)

    def label_shares(self) -> dict[str, float]:
        """Each label's share of the documents extracted, by label; empty without labels."""
        by_label = self.extracted_by_label or {}
        total = sum(by_label.values())
        return {str(k): v / total for k, v in sorted(by_label.items())} if total else {}


@dataclass(frozen=True, slots=True)
class RunStats:
    """``stats.json``: every counter of the run (skips by reason, LLM calls, tokens, ...) and its summary."""

    counters: dict[str, Number]
    summary: Summary

    def to_json(self) -> dict[str, Any]:
        return {"counters": self.counters, "summary": self.summary.to_json()}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> RunStats:
        counters = _get(row, "counters", lambda v: isinstance(v, dict) and all(map(_is_number, v.values())),
                        "an object of counts")
        return cls(dict(counters), Summary.from_json(_get(row, "summary", lambda v: isinstance(v, dict),
                                                          "an object")))

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

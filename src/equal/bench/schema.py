"""The files of a bench folder as typed records: what ``equal make-bench``, ``extract`` and ``bench`` write.

Each record's JSON form is read off its fields (:mod:`equal.codec`), so a key is
named once, and a measurement is named by one key type, :class:`CellKey`:

================================  =====================================================================
``manifest.json``                 :class:`BenchManifest`, a :class:`ReferenceSetEntry` per reference set
``extracted.jsonl``               one :class:`ExtractedPassage` a line (:mod:`equal.extraction_file`)
``results.jsonl``                 one :class:`BenchResult` a line: a cell of the bench measured
``downstream-cells.jsonl.gz``,    ``Cell`` and ``DownstreamRow`` (:mod:`equal.bench.downstream`), keyed
``downstream.jsonl``              by :class:`CellKey` too
================================  =====================================================================

At module level this file imports only the standard library and equal's
standard-library modules: the downstream measurement, which a GPU machine loads
without equal's dependencies, takes :class:`CellKey` from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from equal.codec import JsonRecord, json_key
from equal.extraction_file import ExtractedPassage, StoredPair

__all__ = ["DISTRACTOR_FRACTION", "METRICS", "BenchManifest",
           "BenchResult", "CellKey", "DistractorsEntry", "ExtractedPassage", "Metric",
           "ReferenceSetEntry", "StoredPair", "read_extracted", "read_results"]


@dataclass(frozen=True, order=True)
class CellKey(JsonRecord):
    """Which measurement a cell or a row is: one reference set, strategy, budget and seed."""

    reference_set: str
    strategy: str
    budget: float
    seed: int

    @classmethod
    def of(cls, record: Any) -> CellKey:
        """The key of a record with these four fields (a result, a cell, a downstream row)."""
        return cls(str(record.reference_set), str(record.strategy), float(record.budget), int(record.seed))


# -- manifest.json -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ReferenceSetEntry(JsonRecord):
    """A reference set of the manifest: its two parts (paths relative to the bench folder) and relevant sources."""

    reward: str
    heldout: str
    relevant_sources: list[str]
    reward_examples: int | None = None
    heldout_examples: int | None = None


@dataclass(frozen=True, kw_only=True)
class DistractorsEntry(JsonRecord):
    """The manifest of the variant where similarity misleads (``make-bench --distractors``): passages per kind."""

    per_reference_set: int
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BenchManifest(JsonRecord):
    """``manifest.json``: the corpus, its passages per source, the reference sets by name, any distractors."""

    corpus: str
    passages: int
    reference_sets: dict[str, ReferenceSetEntry]
    sources: dict[str, int] = field(default_factory=dict)
    distractors: DistractorsEntry | None = field(default=None, metadata=json_key(omit_none=True))


# -- results.jsonl -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchResult(JsonRecord):
    """One line of ``results.jsonl``: what a strategy picked at a budget and seed, measured.

    ``ot_heldout`` is ``nan`` for a selection without pairs; ``pairs`` counts the pairs
    left after decontamination, the ones measured.
    """

    reference_set: str
    strategy: str
    budget: float
    seed: int
    ot_heldout: float
    relevant_fraction: float
    relevant_pairs_per_1k_calls: float
    llm_calls: int
    tokens: int
    selection_seconds: float
    pairs: int
    #: pairs the cheap checks grade at least ``GRADED`` (:mod:`equal.quality`), per 1,000 LLM calls
    graded_pairs_per_1k_calls: float = math.nan
    #: the share of the LLM calls spent on distractors (0 on a corpus without them)
    distractor_fraction: float = math.nan

    @property
    def key(self) -> CellKey:
        return CellKey.of(self)


@dataclass(frozen=True)
class Metric:
    """A field of :class:`BenchResult` that the tables and plots show, with its title and direction."""

    name: str
    title: str
    lower_is_better: bool

    def __post_init__(self) -> None:
        if self.name not in {f.name for f in fields(BenchResult)}:
            raise ValueError(f"{self.name!r} is not a field of a bench result")

    @property
    def short_title(self) -> str:
        """The title without its parenthesis: ``OT to held-out``."""
        return self.title.split(" (")[0]

    def of(self, result: BenchResult) -> float:
        value: float = getattr(result, self.name)
        return value


OT_HELDOUT = Metric("ot_heldout", "OT to held-out (lower is better)", True)
RELEVANT_FRACTION = Metric("relevant_fraction", "relevant fraction of documents", False)
LLM_CALLS = Metric("llm_calls", "LLM calls", True)
#: the columns of ``results.md`` and the PNGs, in order
METRICS = (OT_HELDOUT, RELEVANT_FRACTION,
           Metric("relevant_pairs_per_1k_calls", "relevant pairs per 1,000 LLM calls", False),
           Metric("graded_pairs_per_1k_calls", "pairs graded 4-5 per 1,000 LLM calls", False),
           LLM_CALLS, Metric("tokens", "tokens (in + out)", True),
           Metric("selection_seconds", "selection wall time (s, no LLM)", True))

DISTRACTOR_FRACTION = Metric("distractor_fraction", "share of LLM calls on distractors", True)


def metrics_of(results: list[BenchResult]) -> tuple[Metric, ...]:
    """The columns for ``results``: :data:`METRICS`, and the distractors' share where the corpus has them."""
    has_distractors = any(r.distractor_fraction > 0 for r in results)
    return (*METRICS, DISTRACTOR_FRACTION) if has_distractors else METRICS


def read_results(path: Path) -> list[BenchResult]:
    """The results of ``results.jsonl`` (none when it is missing).

    Raises:
        InputError: a line is not a result; the message names the file and the line.
    """
    from equal.output.formats import read_records  # not at module level: it needs more than the standard library

    return read_records(path, BenchResult.from_json)


def read_extracted(path: Path) -> list[ExtractedPassage]:
    """The passages of an extraction file (none when it is missing); a last line cut short is skipped.

    Raises:
        InputError: a line is not a passage; the message names the file and the line.
    """
    from equal.output.formats import read_records

    return read_records(path, ExtractedPassage.from_json)

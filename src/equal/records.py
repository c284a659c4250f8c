"""The records that flow between stages.

Small dataclasses with slots and a free-form ``metadata`` dict, so stages
pass typed values instead of inventing dictionary keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Stage = Literal["warmup", "bandit"]
STAGES: tuple[Stage, ...] = ("warmup", "bandit")


@dataclass(slots=True)
class Document:
    """One unit of the corpus that is embedded, clustered and extracted.

    A long source record is split into several passages; each passage is a
    ``Document`` whose ``id`` is ``{source_id}#p{index}`` (``source_id`` alone
    when the record fits in one passage).
    """

    id: str
    text: str
    source_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PairGrade:
    """A pair's grade (1-5, higher is better), the cheap checks it failed, and who graded it.

    ``source`` is ``checks`` (the cheap checks of :mod:`equal.quality.checks`) or ``llm``
    (an LLM grader, whose grade then takes the place of the checks' grade; the flags stay).
    """

    grade: int
    flags: tuple[str, ...] = ()
    source: str = "checks"

    def to_json(self) -> dict[str, Any]:
        return {"grade": self.grade, "grade_flags": list(self.flags), "graded_by": self.source}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairGrade | None:
        """The grade in a provenance's ``grade``, ``grade_flags`` and ``graded_by``; ``None`` when they are not one."""
        value, flags, source = data.get("grade"), data.get("grade_flags", []), data.get("graded_by", "checks")
        if (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5
                or not isinstance(flags, list) or not all(isinstance(f, str) for f in flags)
                or source not in ("checks", "llm")):
            return None
        return cls(value, tuple(flags), source)


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a pair of a run's data set came from: the pull that paid for it and its document's record.

    ``cluster`` is the document's cluster; warm-up pairs carry round -1 and the
    reward of their warm-up pseudo-pull. ``label`` is the document's ``corpus.label_field`` value;
    ``labelled`` says whether the run had a label field at all (only then is
    ``label`` written). ``grade`` is the pair's grade (written as ``grade``,
    ``grade_flags`` and ``graded_by``); ``original`` is the pair as extracted
    when a refine pass rewrote it (written as ``original``: question and answer).
    """

    source_id: str
    cluster: int
    round: int
    pull_reward: float
    stage: Stage
    label: Any = None
    labelled: bool = False
    grade: PairGrade | None = None
    original: tuple[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The keys a data set record's ``provenance`` holds besides ``document_id``, in their written order."""
        out: dict[str, Any] = {"source_id": self.source_id, "cluster": self.cluster, "round": self.round,
                               "pull_reward": self.pull_reward, "stage": self.stage}
        if self.labelled:
            out["label"] = self.label
        if self.grade is not None:
            out.update(self.grade.to_json())
        if self.original is not None:
            out["original"] = {"question": self.original[0], "answer": self.original[1]}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> tuple[Provenance | None, dict[str, Any]]:
        """Split a record's provenance (without ``document_id``) into a :class:`Provenance` and other keys.

        A provenance that lacks one of its keys or holds a value of the wrong
        type (a data set edited by hand, or written by another tool) gives
        ``None``, and every key is returned as free metadata. A grade or an
        original that is not one stays in the free metadata.
        """
        rest = dict(data)
        source_id, cluster, round_, reward, stage = (rest.get(k) for k in _PROVENANCE_KEYS)
        if not (isinstance(source_id, str) and isinstance(cluster, int) and isinstance(round_, int)
                and isinstance(reward, (int, float)) and stage in STAGES
                and not any(isinstance(v, bool) for v in (cluster, round_, reward))):
            return None, rest
        for key in _PROVENANCE_KEYS:
            del rest[key]
        labelled = "label" in rest
        grade = PairGrade.from_json(rest) if "grade" in rest else None
        if grade is not None:
            for key in _GRADE_KEYS:
                rest.pop(key, None)
        original = _original(rest.get("original"))
        if original is not None:
            del rest["original"]
        return cls(source_id, cluster, round_, reward, stage, rest.pop("label", None), labelled, grade,
                   original), rest


def _original(value: Any) -> tuple[str, str] | None:
    """A provenance's ``original`` (the pair before a refine pass) as (question, answer); ``None`` if it is none."""
    if not isinstance(value, dict):
        return None
    question, answer = value.get("question"), value.get("answer")
    return (question, answer) if isinstance(question, str) and isinstance(answer, str) else None


_PROVENANCE_KEYS = ("source_id", "cluster", "round", "pull_reward", "stage")
_GRADE_KEYS = ("grade", "grade_flags", "graded_by")


@dataclass(slots=True)
class QAPair:
    """A question-answer pair; a pair of a run's data set also carries its :class:`Provenance`.

    ``metadata`` holds any other free-form keys (read back from a data set's
    provenance that equal did not write).
    """

    question: str
    answer: str
    document_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance | None = None

    def as_text(self) -> str:
        """The text that is embedded for this pair (spec: ``Question: q\\nAnswer: a``)."""
        return f"Question: {self.question}\nAnswer: {self.answer}"


@dataclass(slots=True)
class Generation:
    """One LLM answer with its token usage.

    ``error`` is empty for an answer. A request that got no usable answer on
    any retry yields a generation with an empty ``text`` and the reason in
    ``error``: it is a failure, not an answer, and is never cached, so
    running the same command again sends that request again. Its tokens are
    what its attempts were charged (an unusable answer the server sent is
    still paid for). An answer's tokens include those of the attempts before it.
    """

    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    cached: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def failed(self) -> bool:
        """Whether this is a failed request rather than an answer."""
        return bool(self.error)


@dataclass(slots=True)
class Extraction:
    """What one extraction call yielded for one document."""

    document_id: str
    pairs: list[QAPair]
    generation: Generation
    parse_ok: bool = True
    error: str = ""


@dataclass(slots=True)
class Pull:
    """One arm pull of the bandit: documents of one cluster, their pairs, the reward.

    The warm-up's pseudo-pulls are round -1, cluster -1. ``distance`` is
    ``None`` for a pull that gave no pair.
    """

    round: int
    cluster: int
    document_ids: list[str]
    pairs: list[QAPair]
    distance: float | None
    reward: float

    @property
    def stage(self) -> Stage:
        """``warmup`` for a warm-up pseudo-pull, ``bandit`` for a round's pull."""
        return "warmup" if self.round < 0 else "bandit"

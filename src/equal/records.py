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
class Provenance:
    """Where a pair of a run's data set came from: the pull that paid for it and its document's record.

    ``cluster`` is the document's cluster; warm-up pairs carry round -1 and the
    reward of their warm-up pseudo-pull. ``label`` is the document's ``corpus.label_field`` value;
    ``labelled`` says whether the run had a label field at all (only then is
    ``label`` written).
    """

    source_id: str
    cluster: int
    round: int
    pull_reward: float
    stage: Stage
    label: Any = None
    labelled: bool = False

    def to_json(self) -> dict[str, Any]:
        """The keys a data set record's ``provenance`` holds besides ``document_id``, in their written order."""
        out: dict[str, Any] = {"source_id": self.source_id, "cluster": self.cluster, "round": self.round,
                               "pull_reward": self.pull_reward, "stage": self.stage}
        if self.labelled:
            out["label"] = self.label
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> tuple[Provenance | None, dict[str, Any]]:
        """Split a record's provenance (without ``document_id``) into a :class:`Provenance` and other keys.

        A provenance that lacks one of its keys or holds a value of the wrong
        type (a data set edited by hand, or written by another tool) gives
        ``None``, and every key is returned as free metadata.
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
        return cls(source_id, cluster, round_, reward, stage, rest.pop("label", None), labelled), rest


_PROVENANCE_KEYS = ("source_id", "cluster", "round", "pull_reward", "stage")


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

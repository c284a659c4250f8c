"""The records that flow between stages.

Small dataclasses with slots and a free-form ``metadata`` dict, so stages
pass typed values instead of inventing dictionary keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass(slots=True)
class QAPair:
    """A question-answer pair and where it came from."""

    question: str
    answer: str
    document_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_text(self) -> str:
        """The text that is embedded for this pair (spec: ``Question: q\\nAnswer: a``)."""
        return f"Question: {self.question}\nAnswer: {self.answer}"


@dataclass(slots=True)
class Generation:
    """One LLM answer with its token usage.

    ``error`` is empty for an answer. A request that got no usable answer on
    any retry yields a generation with an empty ``text`` and the reason in
    ``error``: it is a failure, not an answer, and is never cached, so
    running the same command again sends that request again.
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
    """One arm pull of the bandit: documents of one cluster, their pairs, the reward."""

    round: int
    cluster: int
    document_ids: list[str]
    pairs: list[QAPair]
    distance: float | None
    reward: float

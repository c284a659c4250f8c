"""The extraction file: every passage of a corpus with the pairs extracted from it, one JSON object a line.

``equal extract`` writes it (``extracted.jsonl``); it reads back as a corpus with
``extraction.extractor: replay``, and ``equal bench`` replays it for every strategy.
A line is an :class:`ExtractedPassage`: the passage's ``id``, ``text`` and
``source_id``, the corpus fields it kept (its ``corpus.label_field``, say ``source``,
or an ``extracted_with`` that names the runtime of rows extracted elsewhere), its
``qa_pairs`` and the ``tokens`` their extraction cost.

Standard library only (with :mod:`equal.codec`), like the bench's schema that re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from equal.codec import JsonRecord, json_key


@dataclass(frozen=True)
class StoredPair(JsonRecord):
    """One question-answer pair as the extraction file stores it."""

    question: str
    answer: str


@dataclass(frozen=True)
class ExtractedPassage(JsonRecord):
    """One line of the extraction file.

    ``fields`` holds every other key of the line (the corpus fields kept with the
    passage), written between ``source_id`` and ``qa_pairs``.
    """

    id: str
    text: str
    source_id: str = ""
    fields: dict[str, Any] = field(default_factory=dict, metadata=json_key(rest=True))
    qa_pairs: list[StoredPair] = field(default_factory=list)
    tokens: int = 0

    @property
    def source(self) -> Any:
        """The ``source`` field, by which the bench tells relevant passages (``None`` without one)."""
        return self.fields.get("source")

    @property
    def extracted_with(self) -> str | None:
        """The runtime that extracted the pairs, where the line names one (``equal extract``'s lines do not)."""
        runtime = self.fields.get("extracted_with")
        return None if runtime is None else str(runtime)

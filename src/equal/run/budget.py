"""The extraction budget: documents (= extraction calls) and LLM tokens."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Budget:
    """What extraction may spend, and what it has spent: a value, charged by making a new one.

    Every extracted document costs one call, whether the answer came from the
    server or from the response cache, so a resumed run makes the same
    decisions as an uninterrupted one. The token cap is checked before each
    round (and each warm-up batch), so the last round may overshoot it by at
    most one round's tokens. Tokens are what the backend counted: the server's
    ``usage``, checked to be a count from 0 to 10**9, or an estimate from
    characters when the server reports none, so no answer is ever free.

    Attributes:
        max_documents: documents (calls) allowed; ``None`` for no cap.
        max_tokens: tokens (in + out) allowed; ``None`` for no cap.
        documents: documents spent.
        tokens: tokens spent.
    """

    max_documents: int | None = None
    max_tokens: int | None = None
    documents: int = 0
    tokens: int = 0

    @classmethod
    def from_settings(cls, n_documents: int, fraction: float | None, llm_calls: int | None,
                      tokens: int | None) -> Budget:
        """The caps of ``budget.*`` for a corpus of ``n_documents``: the lower of the fraction and the calls."""
        caps = [c for c in (math.ceil(fraction * n_documents) if fraction else None, llm_calls) if c]
        return cls(max_documents=min(caps) if caps else None, max_tokens=tokens)

    def documents_left(self) -> float:
        return math.inf if self.max_documents is None else max(0, self.max_documents - self.documents)

    def exhausted(self) -> bool:
        return self.documents_left() <= 0 or (self.max_tokens is not None and self.tokens >= self.max_tokens)

    def charged(self, documents: int, tokens: int) -> Budget:
        """This budget after spending ``documents`` calls and ``tokens`` tokens.

        Raises:
            ValueError: on a negative amount; spending never gives budget back.
        """
        if documents < 0 or tokens < 0:
            raise ValueError(f"cannot charge a negative cost ({documents} documents, {tokens} tokens)")
        return replace(self, documents=self.documents + documents, tokens=self.tokens + tokens)

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
    round (and each warm-up batch), counting the documents still in flight at
    the mean tokens of the documents charged so far, so the last round may
    overshoot it by about one round's tokens however many rounds are out.
    Tokens are what the backend counted: the server's ``usage``, checked to be
    a count from 0 to 10**9, or an estimate from characters when the server
    reports none or reports it unusably, for every attempt the server answered
    (a request whose answer stayed unusable included), so no answer is ever free.

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

    def tokens_left(self) -> float:
        return math.inf if self.max_tokens is None else max(0, self.max_tokens - self.tokens)

    def exhausted(self, in_flight: int = 0) -> bool:
        """Whether nothing more may be sent, with ``in_flight`` documents sent and not yet charged.

        The tokens of those documents are not known yet: each is counted at the
        mean tokens of the documents charged so far; before any was charged, any
        document in flight may already reach the token cap.
        """
        if self.documents_left() <= 0:
            return True
        if self.max_tokens is None:
            return False
        if in_flight and not self.documents:
            return True
        expected = self.tokens + (in_flight * self.tokens / self.documents if in_flight else 0)
        return expected >= self.max_tokens

    def charged(self, documents: int, tokens: int) -> Budget:
        """This budget after spending ``documents`` calls and ``tokens`` tokens.

        Raises:
            ValueError: on a negative amount; spending never gives budget back.
        """
        if documents < 0 or tokens < 0:
            raise ValueError(f"cannot charge a negative cost ({documents} documents, {tokens} tokens)")
        return replace(self, documents=self.documents + documents, tokens=self.tokens + tokens)

"""Word n-gram overlap between extracted pairs and the texts they must not copy.

The check of GPT-3 and Llama papers, on words: a pair is contaminated when
any run of ``n`` consecutive normalised words of its question or answer
also appears in a protected text (the reference set, whose pairs would
otherwise earn a near-perfect reward, or an evaluation set). Pairs too
short to hold ``n`` words are compared whole.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from equal.records import QAPair

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens; punctuation, markup and spacing do not matter."""
    return _WORD.findall(text.lower())


def _gram_hash(tokens: list[str]) -> int:
    return int.from_bytes(hashlib.blake2b("\x1f".join(tokens).encode(), digest_size=8).digest(), "little")


class NgramIndex:
    """Hashed word n-grams of protected texts.

    Args:
        texts: the texts to protect (e.g. each reference question and answer).
        n: n-gram length in words.
    """

    def __init__(self, texts: Iterable[str], n: int = 8) -> None:
        self.n = n
        self._grams: set[int] = set()
        self._short: set[int] = set()  # protected texts of fewer than n words, whole
        for text in texts:
            tokens = words(text)
            if len(tokens) < n:
                if tokens:
                    self._short.add(_gram_hash(tokens))
                continue
            self._grams.update(_gram_hash(tokens[i:i + n]) for i in range(len(tokens) - n + 1))

    def __len__(self) -> int:
        return len(self._grams) + len(self._short)

    def overlaps(self, text: str) -> bool:
        """True when ``text`` shares an n-gram with a protected text (or equals a short one)."""
        tokens = words(text)
        if len(tokens) < self.n:
            return bool(tokens) and _gram_hash(tokens) in self._short
        return any(_gram_hash(tokens[i:i + self.n]) in self._grams for i in range(len(tokens) - self.n + 1))

    def copies(self, pair: QAPair) -> bool:
        """True when the question or the answer of ``pair`` overlaps a protected text."""
        return self.overlaps(pair.question) or self.overlaps(pair.answer)

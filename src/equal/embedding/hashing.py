"""A deterministic bag-of-words hashing embedder: fast, offline, for tests and dry runs."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from equal.embedding.base import normalize
from equal.progress import ItemsDone

_TOKEN = re.compile(r"\w+")


class HashingEmbedder:
    """Hashes lower-cased word unigrams and bigrams into ``dim`` signed buckets.

    Texts that share words get similar vectors, which is enough to exercise
    clustering, rewards and the bandit without a neural model.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _bucket(self, token: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
        return h % self.dim, 1.0 if (h >> 63) & 1 else -1.0

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _TOKEN.findall(text.lower())
            for token in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
                col, sign = self._bucket(token)
                out[row, col] += sign
        return normalize(out)

    def encode_counting(self, texts: list[str], done: ItemsDone) -> np.ndarray:
        vectors = self.encode(texts)  # a subclass's encode, if it has one
        done(len(texts))
        return vectors

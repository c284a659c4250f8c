"""The embedder contract."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from equal.progress import ItemsDone


class Embedder(Protocol):
    """Maps texts to unit-normalised vectors.

    ``name`` identifies the model for the cache: two embedders with the same
    name must give the same vectors.
    """

    name: str

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``. Returns ``(len(texts), dim)`` float32, rows of unit norm."""
        ...

    def encode_counting(self, texts: list[str], done: ItemsDone) -> np.ndarray:
        """The vectors of :meth:`encode`, calling ``done(n)`` as each ``n`` texts are embedded (all of them at the
        end, for an embedder that cannot tell before), so a progress bar moves inside one call."""
        ...


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero). Returns float32, C-contiguous."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)

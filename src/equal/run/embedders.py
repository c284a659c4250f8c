"""Which model embeds what in a run, and the vectors the run works in.

Alignment does not change these in place: it returns a new
:class:`EmbeddingSpace` (see :mod:`equal.run.alignment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from equal.config import EmbeddingConfig, ExecutorConfig
from equal.corpus.store import PassageStore
from equal.embedding import Embedder, EmbeddingCache, embed_cached
from equal.embedding.store import embed_to_store
from equal.progress import Progress
from equal.records import Document
from equal.run.builders import build_embedder, corpus_embedder
from equal.run.context import CacheLayout

# a bar only for large batches: a pull's few pairs would add one line per round
_BAR_FROM = 257


@dataclass(frozen=True, slots=True)
class Embedders:
    """The embedders of a run.

    Attributes:
        text: the configured model in this process; embeds the reference set
            and, for alignment, the warm-up pairs.
        corpus: embeds the whole corpus (``text`` itself, or actors building it on Ray).
        reward: embeds a pull's pairs for the OT reward (the reference is embedded alike).
        corpus_chunk_size: passages ``corpus`` embeds (and the store keeps) at a time.
    """

    text: Embedder
    corpus: Embedder
    reward: Embedder
    corpus_chunk_size: int

    @classmethod
    def build(cls, embedding: EmbeddingConfig, executor: ExecutorConfig, embedder: Embedder | None = None) -> Embedders:
        """The configured embedders, the corpus's where ``executor`` says; or ``embedder`` (already loaded) for
        everything."""
        if embedder is not None:
            return cls(embedder, embedder, embedder, executor.corpus_chunk_size)
        text = build_embedder(embedding)
        return cls(text, corpus_embedder(partial(build_embedder, embedding), text.name, executor), text,
                   executor.corpus_chunk_size)


@dataclass(frozen=True, slots=True)
class EmbeddingSpace:
    """The vectors the run clusters and rewards in, with the embedders that made them.

    Attributes:
        embedders: the embedders of this space.
        documents: ``(n, d)`` float32, the corpus (clustered, and ordered by ``centroid``).
        reference: ``(r, d)`` float32, the reference set as the reward sees it.
    """

    embedders: Embedders
    documents: np.ndarray
    reference: np.ndarray


def embed_texts(embedder: Embedder, texts: list[str], cache: EmbeddingCache, progress: Progress,
                description: str) -> np.ndarray:
    """``(len(texts), d)`` unit vectors through the embedding cache; a progress bar for large batches only."""
    return embed_cached(embedder, texts, cache, progress=progress if len(texts) >= _BAR_FROM else None,
                        description=description)


def embed_corpus(embedders: Embedders, documents: Sequence[Document], caches: CacheLayout, progress: Progress,
                 description: str) -> np.ndarray:
    """The corpus's vectors under ``embedders.corpus``, ``(n, d)`` float32, in a resumable memory-mapped store
    among ``caches``.

    The texts are streamed: a passage store hands over its text column (read
    a chunk at a time, hashed block by block), never a list of every text.
    """
    texts: Sequence[str] = documents.texts if isinstance(documents, PassageStore) else [d.text for d in documents]
    embedder = embedders.corpus
    return embed_to_store(embedder, texts, caches.corpus_vectors(embedder.name, texts),
                          chunk_size=embedders.corpus_chunk_size, progress=progress, description=description)

"""What is made of an LLM answer where it arrives: its pairs, parsed as the extractor parses them, and their vectors.

With ``executor.embed_pairs``, Ray's LLM actors run an :class:`AnswerPairs` on
their answers as they arrive, so a fast server fleet is not held back by the
driver's CPU embedding pairs; :class:`PairVectorStore` puts the vectors that
come back into the driver's embedding cache, where the reward finds them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

import numpy as np

from equal.distributed.llm import PairVectors
from equal.embedding import Embedder, EmbeddingCache
from equal.embedding.cache import text_key
from equal.extraction.task import parse_pairs
from equal.records import Generation, QAPair
from equal.stats import Stats

logger = logging.getLogger(__name__)


class AnswerPairs:
    """The answer post-processor: an answer's text -> its pairs -> their vectors.

    Made on the driver and sent to each actor, which builds the embedder once,
    on its first batch. Vectors are made under the name of the embedder that
    ``embedder`` builds, so they are found by the reward that uses the same one.

    Args:
        embedder: builds the reward's embedder.
        max_pairs: the most pairs kept of an answer (``extraction.max_pairs``), as the extractor keeps them.
    """

    def __init__(self, embedder: Callable[[], Embedder], max_pairs: int) -> None:
        self._build = embedder
        self.max_pairs = max_pairs
        self._embedder: Embedder | None = None

    def texts(self, generation: Generation) -> list[str]:
        """The text the reward embeds for each pair of an answer; none for a failed answer."""
        if generation.failed:
            return []
        return [QAPair(question=q, answer=a, document_id="").as_text()
                for q, a in parse_pairs(generation.text, max_pairs=self.max_pairs).pairs]

    def start(self, stats: Stats) -> PairBatch:
        """Embed the pairs of a batch's answers as they arrive, on a thread of its own."""
        if self._embedder is None:
            self._embedder = self._build()
        return PairBatch(self, self._embedder, stats)


class PairBatch:
    """The pairs of one batch's answers, embedded as the answers arrive, on a thread of its own.

    Each answer's pairs are one batch, whatever else has arrived, so a pair's
    vector does not depend on when the answers came (padding in a batch moves
    the last bits). Each text is embedded once. An embedder that fails stops
    the embedding, counted as ``pair_embedding_failures``: the batch then has
    no vectors (the driver embeds those pairs itself), and its answers are not lost.
    """

    def __init__(self, answers: AnswerPairs, embedder: Embedder, stats: Stats) -> None:
        self._answers, self._embedder, self._stats = answers, embedder, stats
        self._arrived: queue.SimpleQueue[Generation | None] = queue.SimpleQueue()
        self._texts: dict[str, None] = {}
        self._vectors: list[np.ndarray] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._embed, name="equal-pair-embedder", daemon=True)
        self._thread.start()

    def add(self, index: int, generation: Generation) -> None:
        self._arrived.put(generation)

    def _embed(self) -> None:
        while (generation := self._arrived.get()) is not None:
            new = list(dict.fromkeys(t for t in self._answers.texts(generation) if t not in self._texts))
            if not new or self._error is not None:
                continue
            try:
                self._vectors.append(self._embedder.encode(new))
            except Exception as exc:  # counted when the batch finishes; the answers still go back
                self._error = exc
                continue
            self._texts.update(dict.fromkeys(new))

    def finish(self) -> PairVectors | None:
        """Wait for the last answers' pairs; their texts and vectors, row for row (none after a failure)."""
        self._arrived.put(None)
        self._thread.join()
        if self._error is not None:
            # the answers are paid for: they go back without vectors, and the driver embeds their pairs itself
            logger.warning("could not embed the pairs of the answers where they arrived (%s); the driver embeds them",
                           self._error)
            self._stats.inc("pair_embedding_failures")
            return None
        if not self._vectors:
            return None
        return PairVectors(self._embedder.name, tuple(self._texts), np.concatenate(self._vectors))


class PairVectorStore:
    """Puts the pair vectors made where the answers arrived into the driver's embedding cache.

    They are stored under the keys the reward looks them up by (counted as
    ``pair_vectors_from_workers``); a vector already cached (a reference
    example's, an earlier run's) is kept as it is.
    """

    def __init__(self, cache: EmbeddingCache, stats: Stats) -> None:
        self._cache, self._stats = cache, stats

    def __call__(self, made: PairVectors) -> None:
        keys = [text_key(made.embedder, text) for text in made.texts]
        with self._stats.timed("extract/store pair vectors"):
            self._cache.put_many(keys, made.vectors, replace=False)
        self._stats.inc("pair_vectors_from_workers", len(keys))

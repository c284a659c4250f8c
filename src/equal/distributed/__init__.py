"""Running the heavy stages (embedding, extraction) on a Ray cluster; the bandit stays one driver process.

``executor: {kind: ray}`` swaps the embedder for :class:`RayEmbedder` (Ray Data
``map_batches`` over an actor pool) and the LLM backend for :class:`RayLLM`
(one actor per worker, each holding its own backend and, with
``executor.embed_pairs``, a post-processor that embeds its answers' pairs). Everything else, the
caches included, stays on the driver, so a Ray run resumes like a local one
and gives the same result for the same seed.
"""

from equal.distributed.cluster import connect
from equal.distributed.embedding import RayEmbedder
from equal.distributed.llm import AnswerPostProcessor, PairVectors, RayLLM

__all__ = ["AnswerPostProcessor", "PairVectors", "RayEmbedder", "RayLLM", "connect"]

"""Turning config sections into the objects the run loop uses.

Each kind of part is looked up in a registry keyed by the literal its config
section takes (``extraction.extractor``, ``executor.kind``), so adding a
backend is one entry, not another branch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from equal.config import (
    EmbeddingConfig,
    ExecutorConfig,
    ExtractionBase,
    ExtractionConfig,
    LLMExtractionBase,
    LocalExecutorConfig,
    LocalExtractionConfig,
    OpenAIExtractionConfig,
    RayExecutorConfig,
    ReplayExtractionConfig,
)
from equal.embedding import Embedder, EmbeddingCache, HashingEmbedder, SentenceTransformerEmbedder
from equal.errors import ConfigError
from equal.extraction import ExtractionTask, LLMExtractor, ReplayExtractor
from equal.extraction.extractor import Extractor
from equal.extraction.task import choose_examples
from equal.llm.base import LLM
from equal.llm.cache import ResponseCache
from equal.records import QAPair
from equal.run.context import CacheLayout
from equal.stats import Stats


def _hashing_embedder(config: EmbeddingConfig) -> Embedder:
    dim = config.model.partition("-")[2]
    return HashingEmbedder(int(dim) if dim else 256)


def _sentence_embedder(config: EmbeddingConfig) -> Embedder:
    return SentenceTransformerEmbedder(config.model, device=config.device, batch_size=config.batch_size,
                                       max_length=config.max_length)


#: ``embedding.model`` prefix -> builder; any other model is a sentence-transformers model
EMBEDDERS: dict[str, Callable[[EmbeddingConfig], Embedder]] = {"hashing": _hashing_embedder}


def build_embedder(config: EmbeddingConfig) -> Embedder:
    """The configured embedder, in this process.

    ``hashing`` or ``hashing-DIM`` selects the test embedder; anything else is sentence-transformers.
    """
    builder = EMBEDDERS.get(config.model.partition("-")[0], _sentence_embedder)
    return builder(config)


def _ray_embedder(factory: Callable[[], Embedder], name: str, executor: RayExecutorConfig) -> Embedder:
    from equal.distributed import RayEmbedder

    return RayEmbedder(factory, name, address=executor.address, workers=executor.embed_workers,
                       batch_size=executor.embed_batch_size, cpus_per_worker=executor.cpus_per_worker,
                       gpus_per_worker=executor.gpus_per_worker)


#: ``executor.kind`` -> what embeds the whole corpus
CORPUS_EMBEDDERS: dict[str, Callable[[Callable[[], Embedder], str, Any], Embedder]] = {
    "local": lambda factory, name, executor: factory(),
    "ray": _ray_embedder,
}


def corpus_embedder(factory: Callable[[], Embedder], name: str, executor: ExecutorConfig) -> Embedder:
    """What embeds the whole corpus: ``factory()`` here, or actors building it on the Ray cluster.

    Only the corpus goes to this embedder; a pull's few pairs are embedded in the driver, or by the
    LLM actors that extracted them (``executor.embed_pairs``).
    """
    return CORPUS_EMBEDDERS[executor.kind](factory, name, executor)


@dataclass(frozen=True)
class PairEmbedding:
    """With ``executor.embed_pairs``: the embedder the Ray LLM actors embed their answers' pairs with, and the
    driver's embedding cache, which the reward reads, where their vectors go.

    Attributes:
        embedder: builds the reward's embedder on an actor.
        cache: the driver's embedding cache.
    """

    embedder: Callable[[], Embedder]
    cache: EmbeddingCache


def pair_embedding(embedding: EmbeddingConfig, executor: ExecutorConfig, cache: EmbeddingCache) -> PairEmbedding | None:
    """With ``executor.embed_pairs``: the configured embedder (the reward's, as alignment may not change it then)
    for the actors, their vectors going into ``cache``; else ``None``."""
    if not (isinstance(executor, RayExecutorConfig) and executor.embed_pairs):
        return None
    return PairEmbedding(partial(build_embedder, embedding), cache)


def _local_llm(config: LocalExtractionConfig, stats: Stats, seed: int) -> LLM:
    from equal.llm.llamacpp import LlamaCppLLM

    return LlamaCppLLM(config.model, n_ctx=config.n_ctx, n_threads=config.n_threads, seed=seed, stats=stats)


def _openai_llm(config: OpenAIExtractionConfig, stats: Stats, seed: int) -> LLM:
    from equal.llm.openai import OpenAICompatibleLLM

    return OpenAICompatibleLLM(
        config.base_url, config.model, api_key_env=config.api_key_env, concurrency=config.concurrency,
        max_retries=config.max_retries, timeout_s=config.timeout_s, json_mode=config.json_mode,
        max_response_bytes=config.max_response_bytes, stats=stats, seed=seed,
    )


#: ``extraction.extractor`` -> its LLM backend (the extractors that call an LLM)
LLMS: dict[str, Callable[[Any, Stats, int], LLM]] = {"local": _local_llm, "openai": _openai_llm}


def build_llm(config: ExtractionBase, stats: Stats, seed: int) -> LLM:
    """The backend of ``extraction.extractor`` (local or openai); it counts its faults into ``stats``.

    Calls and tokens are counted by the extractor, once, wherever the backend runs.
    """
    if config.extractor not in LLMS:
        raise ConfigError(f"extractor {config.extractor!r} calls no LLM; choose one of {', '.join(LLMS)}")
    return LLMS[config.extractor](config, stats, seed)


def _ray_llm(llm: LLM, config: LLMExtractionBase, stats: Stats, seed: int, executor: RayExecutorConfig,
             pairs: PairEmbedding | None) -> LLM:
    from equal.distributed import RayLLM
    from equal.extraction.answers import AnswerPairs, PairVectorStore

    # the local backend only lends its name (nothing is loaded or connected here)
    return RayLLM(partial(build_llm, config, seed=seed), llm.name, address=executor.address,
                  workers=executor.llm_workers, chunk_size=config.ray_chunk_size,
                  cpus_per_worker=executor.cpus_per_worker, gpus_per_worker=executor.gpus_per_worker,
                  answers=AnswerPairs(pairs.embedder, config.max_pairs) if pairs is not None else None,
                  on_answers=PairVectorStore(pairs.cache, stats) if pairs is not None else None, stats=stats,
                  former_names=llm.former_names)


#: ``executor.kind`` -> where the LLM runs: this process, or actors on the Ray cluster (which can also embed
#: their answers' pairs)
LLM_EXECUTORS: dict[str, Callable[[LLM, LLMExtractionBase, Stats, int, Any, PairEmbedding | None], LLM]] = {
    "local": lambda llm, config, stats, seed, executor, pairs: llm,
    "ray": _ray_llm,
}


def _llm_extractor(config: LLMExtractionBase, caches: CacheLayout, stats: Stats, seed: int,
                   executor: ExecutorConfig, pairs: PairEmbedding | None, reference: Sequence[QAPair]) -> Extractor:
    structured = not isinstance(config, OpenAIExtractionConfig) or config.json_mode != "none"
    task_shaped = config.prompt == "task"
    examples = choose_examples(reference, config.prompt_examples, seed) if task_shaped else []
    task = ExtractionTask(max_tokens=config.max_tokens, temperature=config.temperature, use_schema=structured,
                          max_pairs=config.max_pairs, examples=examples,
                          description=config.task_description if task_shaped else "")
    llm = LLM_EXECUTORS[executor.kind](build_llm(config, stats, seed), config, stats, seed, executor, pairs)
    return LLMExtractor(llm, task, ResponseCache(caches.responses), stats)


def _replay_extractor(config: ReplayExtractionConfig, caches: CacheLayout, stats: Stats, seed: int,
                      executor: ExecutorConfig, pairs: PairEmbedding | None, reference: Sequence[QAPair]) -> Extractor:
    return ReplayExtractor(config.replay_field, stats=stats)


#: ``extraction.extractor`` -> its extractor
EXTRACTORS: dict[str, Callable[[Any, CacheLayout, Stats, int, ExecutorConfig, PairEmbedding | None,
                                Sequence[QAPair]], Extractor]] = {
    "local": _llm_extractor, "openai": _llm_extractor, "replay": _replay_extractor,
}


def build_extractor(config: ExtractionConfig, caches: CacheLayout, stats: Stats, seed: int,
                    executor: ExecutorConfig | None = None, pairs: PairEmbedding | None = None,
                    reference: Sequence[QAPair] = ()) -> Extractor:
    """The extractor of ``extraction.extractor``, its LLM (if any) run where ``executor`` says (default: here),
    its answers cached in ``caches``.

    ``pairs``: Ray actors also embed their answers' pairs, for the run's embedding cache.
    ``reference``: the reward part of the reference set, where ``extraction.prompt: task`` takes its examples.
    """
    return EXTRACTORS[config.extractor](config, caches, stats, seed, executor or LocalExecutorConfig(), pairs,
                                        reference)

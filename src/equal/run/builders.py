"""Turning config sections into the objects the run loop uses."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from equal.config import EmbeddingConfig, ExecutorConfig, ExtractionConfig
from equal.embedding import Embedder, HashingEmbedder, SentenceTransformerEmbedder
from equal.errors import ConfigError
from equal.extraction import ExtractionTask, LLMExtractor, ReplayExtractor
from equal.extraction.extractor import Extractor
from equal.llm.base import LLM
from equal.llm.cache import ResponseCache
from equal.stats import Stats


def build_embedder(config: EmbeddingConfig) -> Embedder:
    """The configured embedder, in this process.

    ``hashing`` or ``hashing-DIM`` selects the test embedder; anything else is sentence-transformers.
    """
    if config.model.startswith("hashing"):
        dim = config.model.partition("-")[2]
        return HashingEmbedder(int(dim) if dim else 256)
    return SentenceTransformerEmbedder(config.model, device=config.device, batch_size=config.batch_size,
                                       max_length=config.max_length)


def corpus_embedder(factory: Callable[[], Embedder], name: str, executor: ExecutorConfig | None) -> Embedder:
    """What embeds the whole corpus: ``factory()`` here, or actors building it on the Ray cluster.

    Only the corpus goes to the cluster; a pull's few pairs are embedded in the driver.
    """
    if executor is None or executor.kind == "local":
        return factory()
    from equal.distributed import RayEmbedder

    return RayEmbedder(factory, name, address=executor.address, workers=executor.embed_workers,
                       batch_size=executor.embed_batch_size, cpus_per_worker=executor.cpus_per_worker)


def build_llm(config: ExtractionConfig, stats: Stats, seed: int) -> LLM:
    """The backend of ``extraction.extractor`` (local or openai), counting into ``stats``."""
    if config.extractor == "local":
        from equal.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(config.model, n_ctx=config.n_ctx, n_threads=config.n_threads, seed=seed, stats=stats)
    if config.extractor == "openai":
        from equal.llm.openai import OpenAICompatibleLLM

        if not config.model:
            raise ConfigError("extractor 'openai' needs extraction.model, the model name the server serves")
        return OpenAICompatibleLLM(
            config.base_url, config.model, api_key_env=config.api_key_env, concurrency=config.concurrency,
            max_retries=config.max_retries, timeout_s=config.timeout_s, json_mode=config.json_mode,
            max_response_bytes=config.max_response_bytes, stats=stats, seed=seed,
        )
    raise ConfigError(f"unknown extractor {config.extractor!r}")


def build_extractor(config: ExtractionConfig, run_dir: Path, stats: Stats, seed: int,
                    executor: ExecutorConfig | None = None) -> Extractor:
    if config.extractor == "replay":
        return ReplayExtractor(config.replay_field, stats=stats)
    task = ExtractionTask(max_tokens=config.max_tokens, temperature=config.temperature,
                          use_schema=config.json_mode != "none", max_pairs=config.max_pairs)
    cache = ResponseCache((config.cache_dir or run_dir / "cache") / "responses.sqlite")
    llm = build_llm(config, stats, seed)
    if executor is not None and executor.kind == "ray":
        from equal.distributed import RayLLM

        # the local backend only lends its name (nothing is loaded or connected here)
        llm = RayLLM(partial(build_llm, config, seed=seed), llm.name, address=executor.address,
                     workers=executor.llm_workers, chunk_size=max(1, config.concurrency),
                     cpus_per_worker=executor.cpus_per_worker, stats=stats)
    return LLMExtractor(llm, task, cache, stats)

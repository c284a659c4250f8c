"""Turning config sections into the objects the run loop uses."""

from __future__ import annotations

from pathlib import Path

from equal.config import EmbeddingConfig, ExtractionConfig
from equal.embedding import Embedder, HashingEmbedder, SentenceTransformerEmbedder
from equal.errors import ConfigError
from equal.extraction import ExtractionTask, LLMExtractor, ReplayExtractor
from equal.extraction.extractor import Extractor
from equal.llm.cache import ResponseCache
from equal.stats import Stats


def build_embedder(config: EmbeddingConfig) -> Embedder:
    """``hashing`` or ``hashing-DIM`` selects the test embedder; anything else is sentence-transformers."""
    if config.model.startswith("hashing"):
        dim = config.model.partition("-")[2]
        return HashingEmbedder(int(dim) if dim else 256)
    return SentenceTransformerEmbedder(config.model, device=config.device, batch_size=config.batch_size,
                                       max_length=config.max_length)


def build_extractor(config: ExtractionConfig, run_dir: Path, stats: Stats, seed: int) -> Extractor:
    if config.extractor == "replay":
        return ReplayExtractor(config.replay_field, stats=stats)
    task = ExtractionTask(max_tokens=config.max_tokens, temperature=config.temperature,
                          use_schema=config.json_mode != "none", max_pairs=config.max_pairs)
    cache = ResponseCache((config.cache_dir or run_dir / "cache") / "responses.sqlite")
    if config.extractor == "local":
        from equal.llm.llamacpp import LlamaCppLLM

        local = LlamaCppLLM(config.model, n_ctx=config.n_ctx, n_threads=config.n_threads, seed=seed, stats=stats)
        return LLMExtractor(local, task, cache, stats)
    if config.extractor == "openai":
        from equal.llm.openai import OpenAICompatibleLLM

        if not config.model:
            raise ConfigError("extractor 'openai' needs extraction.model, the model name the server serves")
        llm = OpenAICompatibleLLM(
            config.base_url, config.model, api_key_env=config.api_key_env, concurrency=config.concurrency,
            max_retries=config.max_retries, timeout_s=config.timeout_s, json_mode=config.json_mode,
            max_response_bytes=config.max_response_bytes, stats=stats, seed=seed,
        )
        return LLMExtractor(llm, task, cache, stats)
    raise ConfigError(f"unknown extractor {config.extractor!r}")

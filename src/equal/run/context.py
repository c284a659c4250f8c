"""What every phase of a run shares: its config, directory, counters, progress, random generator and caches.

A run builds one :class:`RunContext` before its first phase and hands it to
each phase; nothing in it is replaced halfway through a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from equal.config import RunConfig
from equal.corpus.store import store_path as passage_store_path
from equal.embedding.store import store_path as vector_store_path
from equal.progress import Progress
from equal.stats import Stats

CACHE_DIR = "cache"  # the cache directory beside a run's (or an extraction's) outputs, unless extraction.cache_dir


@dataclass(frozen=True, slots=True)
class CacheLayout:
    """Where every cache of a run lies: one directory, ``extraction.cache_dir`` or ``cache`` beside the outputs.

    Attributes:
        root: the cache directory.
    """

    root: Path

    @classmethod
    def beside(cls, outputs: Path, cache_dir: Path | None) -> CacheLayout:
        """The caches of outputs written in ``outputs``: in ``cache_dir`` when set, else in ``outputs/cache``."""
        return cls(cache_dir or outputs / CACHE_DIR)

    @property
    def responses(self) -> Path:
        """The LLM response cache (:class:`~equal.llm.cache.ResponseCache`)."""
        return self.root / "responses.sqlite"

    @property
    def embeddings(self) -> Path:
        """The vector cache of reference examples and pairs (:class:`~equal.embedding.EmbeddingCache`)."""
        return self.root / "embeddings.sqlite"

    def passages(self, key: str) -> Path:
        """The passage store of the corpus read with the settings ``key`` names (:mod:`equal.corpus.store`)."""
        return passage_store_path(self.root, key)

    def corpus_vectors(self, embedder: str, texts: Sequence[str]) -> Path:
        """The memory-mapped vectors of ``texts`` under ``embedder`` (:mod:`equal.embedding.store`)."""
        return vector_store_path(self.root, embedder, texts)


@dataclass(frozen=True, slots=True)
class RunContext:
    """What the phases of one run share.

    Attributes:
        config: the validated run configuration.
        run_dir: the run directory (``output.dir``), claimed and locked.
        caches: where the run's caches lie.
        stats: the run's counters and stage timings, written to ``stats.json``.
        progress: where long phases report.
        rng: the run's one random generator, seeded by ``seed``; phases draw from it in a fixed order.
    """

    config: RunConfig
    run_dir: Path
    caches: CacheLayout
    stats: Stats
    progress: Progress
    rng: np.random.Generator

    @classmethod
    def start(cls, config: RunConfig, progress: Progress) -> RunContext:
        """The context of a run of ``config``: fresh counters, and the generator seeded by ``config.seed``."""
        run_dir = Path(config.output.dir)
        return cls(config, run_dir, CacheLayout.beside(run_dir, config.extraction.cache_dir), Stats(), progress,
                   np.random.default_rng(config.seed))

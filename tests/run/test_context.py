"""A run's context: one cache layout, resolved once, for the run and for `equal extract`."""

from __future__ import annotations

from equal import run
from equal.progress import NullProgress
from equal.run.context import CacheLayout, RunContext
from equal.run.extract_all import extract_all


def test_the_caches_lie_beside_the_outputs_unless_a_cache_dir_is_set(tmp_path):
    assert CacheLayout.beside(tmp_path / "run", None).root == tmp_path / "run" / "cache"
    assert CacheLayout.beside(tmp_path / "run", tmp_path / "shared").root == tmp_path / "shared"
    caches = CacheLayout(tmp_path / "c")
    assert (caches.responses, caches.embeddings) == (tmp_path / "c" / "responses.sqlite",
                                                     tmp_path / "c" / "embeddings.sqlite")
    assert caches.passages("k").parent == caches.corpus_vectors("e", ["a text"]).parent == tmp_path / "c"


def test_a_context_holds_the_runs_caches_and_a_generator_seeded_by_the_config(replay_config, tmp_path):
    config = replay_config(seed=7)
    ctx = RunContext.start(config, NullProgress())
    assert ctx.run_dir == tmp_path / "run" and ctx.caches == CacheLayout(tmp_path / "run" / "cache")
    assert ctx.rng.integers(1 << 30) == RunContext.start(config, NullProgress()).rng.integers(1 << 30)
    shared = RunContext.start(replay_config(**{"extraction.cache_dir": str(tmp_path / "shared")}), NullProgress())
    assert shared.caches == CacheLayout(tmp_path / "shared")


def test_a_run_and_an_extraction_put_every_cache_where_the_layout_says(replay_config, tmp_path):
    run(replay_config())
    cache = tmp_path / "run" / "cache"
    assert (cache / "embeddings.sqlite").exists()
    assert list(cache.glob("passages-*.arrow")) and list(cache.glob("documents-*.npy"))
    config = replay_config(**{"extraction.cache_dir": str(tmp_path / "shared")})
    extract_all(config, tmp_path / "out" / "extracted.jsonl")
    assert list((tmp_path / "shared").glob("passages-*.arrow"))
    extract_all(replay_config(), tmp_path / "out" / "extracted.jsonl")
    assert list((tmp_path / "out" / "cache").glob("passages-*.arrow"))

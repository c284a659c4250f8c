"""The Ray executor on a real two-node Ray cluster on 127.0.0.1 (`ray start --head` plus a worker node).

The results must equal the local executor's for the same seed.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from equal import run
from equal.embedding import HashingEmbedder
from equal.testing import FakeOpenAIServer
from equal.testing.ray_cluster import local_ray_cluster
from tests.helpers import BENCHMARKS, FIXTURES

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_address():
    with local_ray_cluster(nodes=2, cpus_per_node=2) as address:
        yield address


def test_pipeline_on_ray_equals_the_local_executor(ray_address, replay_config, tmp_path):
    with FakeOpenAIServer() as server:
        common = {"extraction.extractor": "openai", "extraction.model": "fake", "extraction.concurrency": 4,
                  "extraction.base_url": server.base_url, "budget.fraction": 0.3}
        local = run(replay_config(**common, **{"output.dir": str(tmp_path / "local")}))
        sent_locally = server.total_requests
        on_ray = run(replay_config(**common, **{"output.dir": str(tmp_path / "ray"), "executor.kind": "ray",
                                                "executor.address": ray_address, "executor.cpus_per_worker": 1}))
        assert server.total_requests == 2 * sent_locally  # separate caches: the Ray run paid for its own calls
    assert on_ray.dataset_path.read_text() == local.dataset_path.read_text()
    assert on_ray.summary.documents_extracted == local.summary.documents_extracted
    counters = on_ray.counters
    assert counters["llm_calls"] == local.counters["llm_calls"]  # workers' counters reach the driver
    nodes = [k for k in counters if k.startswith("ray_llm_chunks_on_node:")]
    assert len(nodes) == 2, counters  # extraction actors ran on both nodes


def test_two_rounds_in_flight_on_ray_equal_the_local_executor(ray_address, replay_config, tmp_path):
    with FakeOpenAIServer() as server:
        common = {"extraction.extractor": "openai", "extraction.model": "fake", "extraction.concurrency": 4,
                  "extraction.base_url": server.base_url, "budget.fraction": 0.3, "bandit.rounds_in_flight": 2}
        local = run(replay_config(**common, **{"output.dir": str(tmp_path / "local")}))
        on_ray = run(replay_config(**common, **{"output.dir": str(tmp_path / "ray"), "executor.kind": "ray",
                                                "executor.address": ray_address}))
    assert on_ray.dataset_path.read_text() == local.dataset_path.read_text()
    assert (on_ray.run_dir / "rounds.jsonl").read_text() == (local.run_dir / "rounds.jsonl").read_text()


def test_a_server_that_is_down_stops_a_ray_run_with_its_advice(ray_address, replay_config, tmp_path):
    from equal.errors import ServerUnavailable
    from equal.testing import Fault

    with FakeOpenAIServer(fault_for=lambda messages: Fault(status=503)) as server:
        config = replay_config(**{"extraction.extractor": "openai", "extraction.model": "fake",
                                  "extraction.base_url": server.base_url, "extraction.max_retries": 0,
                                  "executor.kind": "ray", "executor.address": ray_address,
                                  "output.dir": str(tmp_path / "ray")})
        with pytest.raises(ServerUnavailable):
            run(config)
    assert not (tmp_path / "ray" / "stats.json").exists()  # nothing written as if the run had finished


class _RecordingEmbedder(HashingEmbedder):
    """The test embedder, remembering every text this process embedded."""

    def __init__(self) -> None:
        super().__init__(256)
        self.texts: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return super().encode(texts)


def test_actors_embed_their_pairs_and_the_driver_only_looks_them_up(ray_address, replay_config, tmp_path):
    with FakeOpenAIServer() as server:
        common = {"extraction.extractor": "openai", "extraction.model": "fake", "extraction.concurrency": 4,
                  "extraction.base_url": server.base_url, "budget.fraction": 0.3}
        in_driver, on_actors = _RecordingEmbedder(), _RecordingEmbedder()
        local = run(replay_config(**common, **{"output.dir": str(tmp_path / "local")}), embedder=in_driver)
        on_ray = run(replay_config(**common, **{"output.dir": str(tmp_path / "ray"), "executor.kind": "ray",
                                                "executor.address": ray_address, "executor.embed_pairs": True}),
                     embedder=on_actors)
    assert on_ray.dataset_path.read_text() == local.dataset_path.read_text()  # the same vectors, the same run
    pair_texts = {p.as_text() for p in on_ray.pairs}
    assert pair_texts and pair_texts <= set(in_driver.texts)  # the local run embedded its pairs itself
    assert not pair_texts & set(on_actors.texts)  # the Ray run's driver embedded none of them
    assert on_ray.counters["pair_vectors_from_workers"] >= len(pair_texts)
    assert "pair_vectors_from_workers" not in local.counters


def test_embed_pairs_needs_ray_and_the_base_reward_model(replay_config):
    from equal.errors import ConfigError

    with pytest.raises(ConfigError, match="executor.embed_pairs needs executor.kind: ray"):
        replay_config(**{"executor.embed_pairs": True})
    with pytest.raises(ConfigError, match="alignment.reward_model: base"):
        replay_config(**{"executor.kind": "ray", "executor.embed_pairs": True, "alignment.enabled": True,
                         "alignment.reward_model": "aligned"})


class _FailingEmbedder(HashingEmbedder):
    def encode(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError("CUDA out of memory")


def test_an_actor_whose_embedder_fails_still_sends_back_its_paid_answers(ray_address):
    from equal.distributed.llm import _LLMWorker
    from equal.extraction.answers import AnswerPairs
    from equal.llm.openai import OpenAICompatibleLLM

    requests = _requests(4)
    with FakeOpenAIServer() as server:
        worker = _LLMWorker(lambda stats: OpenAICompatibleLLM(server.base_url, "fake", max_retries=0, stats=stats),
                            AnswerPairs(_FailingEmbedder, 5))
        chunk = worker.generate(0, requests)
        assert server.total_requests == 4
    assert len(chunk.generations) == 4 and not any(g.failed for g in chunk.generations)
    assert chunk.pair_vectors is None and chunk.pair_texts == ()  # the driver embeds these pairs itself
    assert chunk.counters["pair_embedding_failures"] == 1


def _slow_ray_llm(ray_address: str, base_url: str):
    from functools import partial

    from equal.distributed import RayLLM
    from equal.llm.openai import OpenAICompatibleLLM

    return RayLLM(partial(lambda url, stats: OpenAICompatibleLLM(url, "fake", max_retries=0, stats=stats), base_url),
                  "fake", address=ray_address, workers=2, chunk_size=2)


def _requests(n: int):
    from equal.extraction import ExtractionTask
    from equal.records import Document

    return [ExtractionTask().format_input(Document(f"d{i}", f"text number {i} about things")) for i in range(n)]


def test_a_stopped_ray_batch_sends_none_of_its_queued_chunks(ray_address):
    from concurrent.futures import CancelledError

    with FakeOpenAIServer(latency=0.5) as server:
        llm = _slow_ray_llm(ray_address, server.base_url)
        try:
            future = llm.submit(_requests(12))
            deadline = time.monotonic() + 60
            while server.total_requests == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            future.cancel()  # what a Ctrl-C in the caller does
            with pytest.raises(CancelledError):
                future.result(timeout=30)
            time.sleep(3)  # the two chunks already at the actors finish; a queued one would go in this time
            assert server.total_requests <= 4  # the two chunks out at most; the other four never go
        finally:
            llm.close()


def test_closing_before_the_batch_is_sent_sends_nothing_and_leaves_no_actor(ray_address):
    from concurrent.futures import CancelledError

    with FakeOpenAIServer(latency=0.5) as server:
        llm = _slow_ray_llm(ray_address, server.base_url)
        future = llm.submit(_requests(12))
        llm.close()
        with pytest.raises(CancelledError):
            future.result(timeout=30)
        time.sleep(2)
        assert server.total_requests <= 4 and llm._actors == []


@pytest.mark.parametrize("sizes", [{"workers": 0}, {"chunk_size": 0}])
def test_a_ray_llm_without_workers_or_chunks_is_refused(sizes):
    from equal.distributed import RayLLM

    with pytest.raises(ValueError, match="at least one worker"):
        RayLLM(lambda stats: None, "fake", **sizes)  # type: ignore[arg-type, return-value]


def test_closing_while_a_batch_is_out_ends_it_cancelled(ray_address):
    """close() kills the actors under the chunks they are working on: the batch ends cancelled, not as an
    actor failure."""
    from concurrent.futures import CancelledError

    with FakeOpenAIServer(latency=2) as server:
        llm = _slow_ray_llm(ray_address, server.base_url)
        future = llm.submit(_requests(12))
        deadline = time.monotonic() + 60
        while server.total_requests < 4 and time.monotonic() < deadline:  # both actors hold a chunk
            time.sleep(0.05)
        llm.close()
        with pytest.raises(CancelledError):
            future.result(timeout=30)
        assert server.total_requests == 4 and llm._actors == []


def test_minilm_embeddings_on_ray_data_equal_local(ray_address):
    from functools import partial

    from equal.config import EmbeddingConfig, RayExecutorConfig
    from equal.run.builders import build_embedder, corpus_embedder

    texts = [json.loads(line)["text"] for line in (FIXTURES / "mini_corpus.jsonl").read_text().splitlines()]
    config = EmbeddingConfig(model="minilm", device="cpu")
    local = build_embedder(config)
    remote = corpus_embedder(partial(build_embedder, config), local.name,
                             RayExecutorConfig(address=ray_address, embed_workers=2, embed_batch_size=4))
    assert remote.name == local.name  # same vectors, so caches are shared
    np.testing.assert_allclose(remote.encode(texts), local.encode(texts), atol=1e-5)


def test_throughput_benchmark_measures_the_driver_with_and_without_pairs_embedded_on_actors(ray_address, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("throughput", BENCHMARKS / "throughput.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["throughput"] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    corpus, reference = bench.make_data(tmp_path / "data", 600)
    prepared = tmp_path / "prepared"
    bench.prepare(corpus, reference, prepared, tmp_path)
    rows = {executor: bench.measure("instant", 1, corpus, reference, prepared, tmp_path, 0.2, 16, 0.0,
                                    executor=executor, ray_address=ray_address)
            for executor in ("ray", "ray+pairs")}
    for row in rows.values():
        assert row.documents == 120 and row.driver_cpu_ms_per_document > 0
    # MiniLM on the driver takes tens of ms a document; looking the actors' vectors up, well under one
    embedding = {e: r.ms_per_document["pair embedding"] for e, r in rows.items()}
    assert embedding["ray+pairs"] < embedding["ray"] / 3, embedding
    assert "| instant | ray+pairs | 1 | 16 | 120 |" in bench.table(list(rows.values()))

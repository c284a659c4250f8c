"""The real backends: the packaged llama.cpp model in process and behind llama-cpp-python's
OpenAI-compatible server on loopback, and the packaged MiniLM embedder.

These load real models (about a minute on 2 cores); they are marked ``slow``
and run in CI.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from equal import load_config, run
from equal.embedding import EmbeddingCache, SentenceTransformerEmbedder, embed_cached
from equal.extraction import ExtractionTask, LLMExtractor
from equal.llm.assets import MODEL_SHA256, default_model_path
from equal.llm.openai import OpenAICompatibleLLM
from equal.records import Document
from equal.stats import Stats
from tests.helpers import FIXTURES

pytestmark = pytest.mark.slow


def test_packaged_model_is_assembled_and_verified():
    path = default_model_path()
    assert path.stat().st_size == 491_400_064
    assert path.with_suffix(".verified").read_text() == MODEL_SHA256


def test_packaged_embedder_loads_offline_and_caches(tmp_path):
    embedder = SentenceTransformerEmbedder()
    texts = ["How do I reverse a list in Python?", "Use reversed() or list.reverse().", "The Nile is a river."]
    cache = EmbeddingCache(tmp_path / "e.sqlite")
    x = embed_cached(embedder, texts, cache)
    assert x.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2]  # the Python pair is closer than the river
    calls = []
    embedder.encode = lambda t: calls.append(t) or np.zeros((len(t), 384), np.float32)  # type: ignore[method-assign]
    np.testing.assert_array_equal(embed_cached(embedder, texts, cache), x)
    assert calls == []  # all three came from the cache


def test_end_to_end_with_the_local_llm(tmp_path):
    """The whole pipeline on 12 real passages with the real embedder and the real local LLM."""
    cfg = load_config(None, {
        "corpus.path": str(FIXTURES / "mini_corpus.jsonl"), "corpus.id_field": "id",
        "corpus.label_field": "source", "reference.path": str(FIXTURES / "mini_reference.jsonl"),
        "clustering.k": 3, "budget.fraction": 0.5, "warmup.min_documents": 2,
        "extraction.extractor": "local", "extraction.max_tokens": 384, "output.dir": str(tmp_path / "run"),
    })
    result = run(cfg)
    counters, summary = result.counters, result.summary.to_json()
    assert summary["documents_extracted"] == 6
    assert counters["llm_calls"] == 6 and counters["tokens_in"] > 500 and counters["tokens_out"] > 0
    records = [json.loads(x) for x in result.dataset_path.read_text().splitlines()]
    assert len(records) == counters["pairs_written"] > 0
    assert all(r["messages"][0]["content"] and r["messages"][1]["content"] for r in records)
    rounds = (result.run_dir / "rounds.jsonl").read_text().splitlines()
    assert len(rounds) >= 1
    # a second run answers every call from the response cache
    again = run(cfg)
    assert again.counters.get("llm_calls", 0) == 0
    assert again.dataset_path.read_text() == result.dataset_path.read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server():
    """llama-cpp-python's OpenAI-compatible server with the packaged model, on loopback."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--model_alias", "qwen-0.5b"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("llama_cpp.server did not come up within 120 s")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_openai_backend_against_a_real_llama_cpp_server(llama_server):
    stats = Stats()
    llm = OpenAICompatibleLLM(llama_server, "qwen-0.5b", json_mode="object_schema", concurrency=2, stats=stats)
    lines = (FIXTURES / "mini_corpus.jsonl").read_text().splitlines()[:2]
    docs = [Document(id=r["id"], text=r["text"]) for r in map(json.loads, lines)]
    out = LLMExtractor(llm, ExtractionTask(max_tokens=512, max_pairs=2), stats=stats).extract(docs)
    assert len(out) == 2 and all(e.parse_ok for e in out)
    assert stats.get("llm_calls") == 2 and stats.get("tokens_in") > 100 and stats.get("tokens_out") > 0


def test_the_packaged_model_grades_and_rewrites_pairs_through_the_cache(tmp_path):
    """The quality passes on the real local model: a grade from 1 to 5 for each pair, a rewrite that keeps the
    original, and a second pass answered from the cache."""
    from equal.llm.cache import ResponseCache
    from equal.llm.llamacpp import LlamaCppLLM
    from equal.quality import ReferenceShape
    from equal.records import PairGrade, Provenance, QAPair
    from equal.run.budget import Budget
    from equal.run.quality import CachedRequests, llm_graded, refined

    examples = [QAPair("How do I reverse a list in Python?",
                       "Call reversed(xs) for an iterator, or xs.reverse() to reverse it in place.")]
    provenance = Provenance("d", 0, 0, 0.1, "bandit", grade=PairGrade(3, ("points_at_passage",)))
    pairs = [QAPair("What does the text say about sorted()?", "It returns a new sorted list.", "d",
                    provenance=provenance),
             QAPair("How do I sort a list of strings by length in Python?",
                    "Use sorted(words, key=len), which returns a new list ordered by length.", "d",
                    provenance=provenance)]
    stats = Stats()
    llm = LlamaCppLLM(None, n_ctx=2048, n_threads=None, seed=0, stats=stats)
    cache = ResponseCache(tmp_path / "responses.sqlite")
    try:
        graded = llm_graded(pairs, CachedRequests(llm, cache, stats, "grade", Budget()), examples)
        grades = [p.provenance.grade for p in graded]  # type: ignore[union-attr]
        assert stats.as_dict()["grade_calls"] == 2
        assert all(g is not None and (g.source == "llm" and 1 <= g.grade <= 5 or g == provenance.grade)
                   for g in grades)
        assert stats.as_dict().get("grade_unparsed", 0) + sum(g.source == "llm" for g in grades) == 2
        out, rewritten = refined(pairs[:1], CachedRequests(llm, cache, stats, "refine", Budget()), examples,
                                 min_grade=1, max_tokens=256, shape=ReferenceShape(10.0), protected=None, removed=[])
        assert stats.as_dict()["refine_calls"] == 1
        if rewritten:  # a usable rewrite keeps the pair as extracted beside it
            assert out[0].provenance.original == (pairs[0].question, pairs[0].answer)  # type: ignore[union-attr]
        else:
            assert stats.as_dict()["refine_unparsed"] == 1 and out[0] == pairs[0]
        again = llm_graded(pairs, CachedRequests(llm, cache, stats, "grade", Budget()), examples)
        assert again == graded and stats.as_dict()["grade_calls"] == 2 and stats.as_dict()["grade_cache_hits"] == 2
    finally:
        cache.close()
        llm.close()

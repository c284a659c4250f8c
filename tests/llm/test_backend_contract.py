"""One contract, every extraction backend: replay, the packaged local model, an OpenAI-compatible server.

Each backend is built from its config section the way a run builds it
(``build_extractor``) and goes through the same assertions: one extraction
per document, in order, each with its generation and token usage; the calls
and tokens counted once (by the extractor, not again by the backend) and
equal to what the generations carry; a second pass answered from the cache
at no cost. The local model loads the real GGUF (``slow``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from equal.config import LocalExtractionConfig, OpenAIExtractionConfig, ReplayExtractionConfig
from equal.errors import BackendError
from equal.extraction import LLMExtractor
from equal.extraction.extractor import Extractor
from equal.llm.base import ChatRequest, GeneratesInPlace, OnResult
from equal.records import Document, Generation
from equal.run.builders import build_extractor
from equal.run.context import CacheLayout
from equal.stats import Stats
from equal.testing import FakeOpenAIServer
from tests.helpers import FIXTURES

COUNTED_ONCE = ("llm_calls", "tokens_in", "tokens_out")


def _documents(n: int = 3) -> list[Document]:
    rows = [json.loads(line) for line in (FIXTURES / "mini_corpus.jsonl").read_text().splitlines()[:n]]
    pairs = [{"question": f"What does passage {i} say?", "answer": r["text"][:80]} for i, r in enumerate(rows)]
    return [Document(id=r["id"], text=r["text"], metadata={"qa_pairs": [p]}) for r, p in zip(rows, pairs)]


@dataclass
class Backend:
    name: str
    extractor: Extractor
    stats: Stats
    calls_llm: bool
    requests_seen: Callable[[], int] | None  # requests that reached the backend (None: not observable)


@contextmanager
def _backend(name: str, tmp_path: Path) -> Iterator[Backend]:
    stats = Stats()
    if name == "replay":
        extractor = build_extractor(ReplayExtractionConfig(), CacheLayout(tmp_path / "cache"), stats, seed=0)
        yield Backend(name, extractor, stats, False, lambda: 0)
    elif name == "openai":
        with FakeOpenAIServer() as server:
            config = OpenAIExtractionConfig(model="fake", base_url=server.base_url, concurrency=2)
            extractor = build_extractor(config, CacheLayout(tmp_path / "cache"), stats, seed=0)
            yield Backend(name, extractor, stats, True, lambda: server.total_requests)
    else:
        extractor = build_extractor(LocalExtractionConfig(max_tokens=256, max_pairs=2), CacheLayout(tmp_path / "cache"),
                                    stats, seed=0)
        yield Backend(name, extractor, stats, True, None)
    extractor.close()


BACKENDS = ["replay", "openai", pytest.param("local", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_keeps_the_extraction_contract(name, tmp_path):
    documents = _documents()
    with _backend(name, tmp_path) as backend:
        out = backend.extractor.extract(documents)
        # one extraction per document, in order, each with its generation and usage
        assert [e.document_id for e in out] == [d.id for d in documents]
        assert all(isinstance(e.generation, Generation) and not e.generation.failed for e in out)
        assert all(isinstance(e.generation.tokens_in, int) and isinstance(e.generation.tokens_out, int) for e in out)
        assert all(e.parse_ok and all(p.document_id == e.document_id for p in e.pairs) for e in out)
        # every document has pairs (the small local model may find none in one)
        assert sum(bool(e.pairs) for e in out) >= len(out) - (1 if name == "local" else 0)
        sent = [e.generation for e in out if not e.generation.cached]
        assert len(sent) == (len(documents) if backend.calls_llm else 0)
        assert all(g.tokens_in > 0 and g.tokens_out > 0 for g in sent)  # every answer carries its usage
        # calls and tokens counted once: exactly what the generations carry, and what the backend received
        counters = backend.stats.as_dict()
        assert counters.get("llm_calls", 0) == len(sent)
        assert counters.get("tokens_in", 0) == sum(g.tokens_in for g in sent)
        assert counters.get("tokens_out", 0) == sum(g.tokens_out for g in sent)
        if backend.requests_seen is not None:
            assert backend.requests_seen() == len(sent)
        # a second pass costs nothing: answered from the response cache, counted as hits, not calls
        again = backend.extractor.extract(documents)
        assert [e.pairs for e in again] == [e.pairs for e in out]
        assert {k: backend.stats.get(k) for k in COUNTED_ONCE} == {k: counters.get(k, 0) for k in COUNTED_ONCE}
        assert backend.stats.get("llm_cache_hits") == (len(documents) if backend.calls_llm else 0)
        if backend.requests_seen is not None:
            assert backend.requests_seen() == len(sent)


@pytest.mark.parametrize("name", ["openai", pytest.param("local", marks=pytest.mark.slow)])
def test_every_llm_backend_answers_each_request_once_and_counts_no_calls_itself(name, tmp_path):
    """The LLM contract under the extractor: one generation per request, in order, reported once as it arrives."""
    documents = _documents()
    with _backend(name, tmp_path) as backend:
        assert isinstance(backend.extractor, LLMExtractor)
        llm, task = backend.extractor.llm, backend.extractor.task
        requests = [task.format_input(d) for d in documents]
        arrived: list[int] = []
        generations = llm.generate(requests, on_result=lambda i, g: arrived.append(i))
        assert len(generations) == len(requests) and sorted(arrived) == list(range(len(requests)))
        assert all(g.tokens_in > 0 and g.tokens_out > 0 and not g.failed for g in generations)
        for document, generation in zip(documents, generations):  # in the order asked
            pairs, parsed = task.format_output(document, generation.text)
            assert parsed.ok and all(p.document_id == document.id for p in pairs)
        # the backend counted none of it: calls and tokens are the extractor's to count, once
        assert not {k for k in COUNTED_ONCE if backend.stats.get(k)}


def test_the_registries_cover_exactly_the_configs_literals():
    import typing

    from equal.config import EXECUTOR_KINDS, EXTRACTION_BACKENDS, LLMExtractionBase
    from equal.run.builders import CORPUS_EMBEDDERS, EXTRACTORS, LLM_EXECUTORS, LLMS

    assert set(EXTRACTORS) == set(EXTRACTION_BACKENDS)
    assert set(LLMS) == {b for b, model in EXTRACTION_BACKENDS.items() if issubclass(model, LLMExtractionBase)}
    kinds = {kind for model in EXECUTOR_KINDS.values()
             for kind in typing.get_args(model.model_fields["kind"].annotation)}
    assert set(CORPUS_EMBEDDERS) == set(LLM_EXECUTORS) == kinds


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_submits_a_batch_and_reports_each_document_once(name, tmp_path):
    """``submit`` is part of every extractor: the same extractions as ``extract``, each document reported done."""
    documents = _documents()
    with _backend(name, tmp_path) as backend:
        reported: list[int] = []
        pending = backend.extractor.submit(documents, reported.append)
        out = pending.take(1) + pending.rest()
        assert [e.document_id for e in out] == [d.id for d in documents]
        assert sum(reported) == len(documents)
        assert [e.pairs for e in backend.extractor.extract(documents)] == [e.pairs for e in out]


@pytest.mark.parametrize("name", ["openai", pytest.param("local", marks=pytest.mark.slow)])
def test_every_llm_backend_submits_a_batch_and_its_future_holds_the_generations(name, tmp_path):
    """``submit`` is part of the LLM protocol: llama.cpp generates in place and returns a future already done."""
    documents = _documents()
    with _backend(name, tmp_path) as backend:
        assert isinstance(backend.extractor, LLMExtractor)
        llm, task = backend.extractor.llm, backend.extractor.task
        arrived: list[int] = []
        future = llm.submit([task.format_input(d) for d in documents], on_result=lambda i, g: arrived.append(i))
        if name == "local":
            assert future.done()
        generations = future.result(timeout=60)
        assert len(generations) == len(documents) and sorted(arrived) == list(range(len(documents)))
        assert all(not g.failed for g in generations)


class _InPlace(GeneratesInPlace):
    """Generates in place; fails on a request that says so."""

    name = "in-place"

    def __init__(self) -> None:
        self.generated: list[str] = []

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> list[Generation]:
        out = []
        for i, request in enumerate(requests):
            if request.messages[0]["content"] == "fail":
                raise BackendError("the model refused")
            self.generated.append(request.messages[0]["content"])
            out.append(Generation(text="[]", tokens_in=1, tokens_out=1))
            if on_result is not None:
                on_result(i, out[-1])
        return out

    def close(self) -> None:
        pass


def test_a_backend_that_generates_in_place_submits_by_generating_and_raises_at_once():
    llm = _InPlace()
    requests = [ChatRequest(({"role": "user", "content": text},)) for text in ("a", "b")]
    arrived: list[int] = []
    future = llm.submit(requests, on_result=lambda i, g: arrived.append(i))
    assert future.done() and len(future.result()) == 2 and arrived == [0, 1] and llm.generated == ["a", "b"]
    assert llm.former_names == ()
    with pytest.raises(BackendError, match="refused"):  # raised by submit itself: nothing is sent after it
        llm.submit([ChatRequest(({"role": "user", "content": "fail"},))])

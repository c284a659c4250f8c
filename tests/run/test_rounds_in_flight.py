"""Rounds and pulls in flight against an HTTP server: deterministic, within the limits, resumable.

Two rounds may be out at once; inside a round, each pull is rewarded as soon as its own answers are in.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from equal import load_config, run
from equal.errors import ServerUnavailable
from equal.testing import FakeOpenAIServer
from equal.testing.fake_server import Fault
from tests.helpers import make_corpus, make_reference

CONCURRENCY = 4


def _config(tmp_path, base_url, name, rounds_in_flight=2, **overrides):
    settings = {
        "corpus.path": str(make_corpus(tmp_path / "corpus.jsonl")),
        "reference.path": str(make_reference(tmp_path / "reference.jsonl")),
        "corpus.id_field": "id", "embedding.model": "hashing-256", "clustering.k": 8, "seed": 3,
        "budget.fraction": 0.4, "bandit.clusters_per_round": 2, "bandit.docs_per_pull": 3,
        "bandit.rounds_in_flight": rounds_in_flight,
        "extraction.extractor": "openai", "extraction.model": "fake", "extraction.base_url": base_url,
        "extraction.max_retries": 0, "extraction.concurrency": CONCURRENCY, "extraction.timeout_s": 10,
        "extraction.cache_dir": str(tmp_path / f"cache-{name}"), "output.dir": str(tmp_path / name),
    }
    settings.update(overrides)
    return load_config(None, settings)


def _jitter() -> float:
    """Answers come back in a different order on every run."""
    return random.uniform(0.0, 0.03)


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def _outputs(result) -> tuple[str, str]:
    return (result.dataset_path.read_text(), (result.run_dir / "rounds.jsonl").read_text())


def test_two_rounds_in_flight_are_deterministic_whatever_order_the_answers_come_in(tmp_path):
    outputs = []
    for name in ("a", "b"):
        with FakeOpenAIServer(latency=_jitter, keep_alive=True) as server:
            result = run(_config(tmp_path, server.base_url, name))
            outputs.append(_outputs(result))
        assert _most_at_once(server.intervals) <= CONCURRENCY  # one limit for both rounds' requests
        assert max(server.requests.values()) == 1  # no request sent twice
    assert outputs[0] == outputs[1]
    assert result.summary.documents_extracted == result.counters["llm_calls"] == 80  # the budget: 40% of 200


def test_a_server_that_goes_down_with_two_rounds_out_stops_the_run_and_the_rerun_pays_nothing_twice(tmp_path):
    with FakeOpenAIServer(latency=_jitter) as clean:
        expected = _outputs(run(_config(tmp_path, clean.base_url, "clean")))
    answered, down = 0, True
    lock = threading.Lock()

    def down_after_30(messages):
        nonlocal answered
        with lock:
            answered += 1
            return Fault(status=503) if down and answered > 30 else None

    # one server for both runs: its address is part of every response-cache key
    with FakeOpenAIServer(latency=_jitter, fault_for=down_after_30) as server:
        with pytest.raises(ServerUnavailable):
            run(_config(tmp_path, server.base_url, "crash"))
        down = False
        result = run(_config(tmp_path, server.base_url, "crash"))
        answers = [len(server.intervals)]
    assert _outputs(result) == expected
    kept, sent = result.counters.get("llm_cache_hits", 0), result.counters["llm_calls"]
    assert kept + sent == 80 and kept >= 30 - CONCURRENCY  # at most the requests in flight at the fall are lost
    # the server finished at most 30 answers for the first run (one in flight may be cut off by the fall),
    # and the rerun kept each one it received: nothing was paid twice
    delivered = answers[0] - sent
    assert 30 - CONCURRENCY <= delivered <= 30 and kept <= delivered


class _Gate:
    """Holds the answer to one document until the test opens the gate (or ``timeout`` passes)."""

    def __init__(self, held: str, timeout: float = 20.0) -> None:
        self.held, self.timeout = held, timeout
        self.open = threading.Event()
        self.opened_in_time = False

    def answer(self, messages):
        from equal.testing import default_answer, document_text

        if document_text(messages).startswith(self.held):
            self.opened_in_time = self.open.wait(self.timeout)
        return default_answer(messages)


def _documents(n: int):
    from equal.records import Document

    return [Document(f"d{i}", f"document {i} says something about topic {i % 3} in plain words") for i in range(n)]


def _extractor(base_url: str):
    from equal.extraction import ExtractionTask, LLMExtractor
    from equal.llm.openai import OpenAICompatibleLLM

    return LLMExtractor(OpenAICompatibleLLM(base_url, "fake", concurrency=CONCURRENCY, max_retries=0, timeout_s=30),
                        ExtractionTask())


def test_a_slice_of_a_batch_is_handed_over_while_the_rest_is_still_out():
    gate = _Gate("document 2 ")
    with FakeOpenAIServer(answer=gate.answer) as server:
        extractor = _extractor(server.base_url)
        try:
            pending = extractor.submit(_documents(3))
            first = pending.take(2)  # documents 0 and 1 are answered; document 2 is held
            assert not gate.open.is_set()
            assert [e.document_id for e in first] == ["d0", "d1"] and all(e.pairs for e in first)
            gate.open.set()
            assert [e.document_id for e in pending.rest()] == ["d2"]
        finally:
            extractor.close()
    assert gate.opened_in_time


def test_each_pull_is_rewarded_as_soon_as_its_own_answers_are_in(tmp_path):
    from equal.bandit import RoundShape
    from equal.run import PullScore, play_rounds
    from equal.run.budget import Budget
    from equal.run.extract import ExtractStep
    from equal.stats import Stats
    from tests.helpers import FakeArms, ScriptedPolicy

    # one round of two pulls: cluster 0 gives documents 0-1, cluster 1 documents 2-3; document 3 is held
    # until the first pull is rewarded, so a loop that waited for the whole round would wait out the timeout
    gate = _Gate("document 3 ")
    rewarded: list[int] = []

    def reward(pairs):
        rewarded.append(len(pairs))
        gate.open.set()
        return PullScore(0.5, 0.5)

    with FakeOpenAIServer(answer=gate.answer) as server:
        extractor = _extractor(server.base_url)
        extract = ExtractStep(extractor, _documents(4), None, Stats(), None)
        try:
            pulls, budget = play_rounds(FakeArms([2, 2]), ScriptedPolicy([[0, 1]]), Budget(max_documents=4),
                                        shape=RoundShape(2, 2), extract=extract, submit=extract.submit,
                                        reward=reward, rng=np.random.default_rng(0))
        finally:
            extractor.close()
    assert gate.opened_in_time  # opened by the first pull's reward, not by the timeout
    assert [p.document_ids for p in pulls] == [["d0", "d1"], ["d2", "d3"]] and rewarded == [2, 2]
    assert budget.documents == 4


def test_an_answer_is_handed_over_only_once_it_is_in_the_response_cache(tmp_path):
    import time

    from equal.extraction import ExtractionTask, LLMExtractor
    from equal.llm.cache import ResponseCache
    from equal.llm.openai import OpenAICompatibleLLM

    class SlowCache(ResponseCache):
        def put(self, key, generation):
            time.sleep(0.5)  # a slow disk: the answer is known before it is stored
            super().put(key, generation)

    documents = _documents(2)
    with FakeOpenAIServer() as server:
        llm = OpenAICompatibleLLM(server.base_url, "fake", concurrency=CONCURRENCY, max_retries=0, timeout_s=30)
        extractor = LLMExtractor(llm, ExtractionTask(), SlowCache(tmp_path / "responses.sqlite"))
        try:
            pending = extractor.submit(documents)
            first = pending.take(1)
            # whatever the caller does with it next (a round log line) never outlives an uncached answer
            assert extractor.cache.get(extractor.task.format_input(documents[0]).key(llm.name)) is not None
            assert first[0].pairs
            pending.rest()
        finally:
            extractor.close()

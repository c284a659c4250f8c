"""Two bandit rounds in flight against an HTTP server: deterministic, within the limits, resumable."""

from __future__ import annotations

import random
import threading

import pytest

from conftest import make_corpus, make_reference
from equal import load_config, run
from equal.errors import ServerUnavailable
from equal.testing import FakeOpenAIServer
from equal.testing.fake_server import Fault

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

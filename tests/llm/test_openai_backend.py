"""The HTTP backend against a scripted OpenAI-compatible server on loopback."""

import json

import pytest

from equal.errors import BackendError, RateLimited, ServerUnavailable
from equal.extraction import ExtractionTask, LLMExtractor
from equal.llm.cache import ResponseCache
from equal.llm.openai import OpenAICompatibleLLM
from equal.records import Document
from equal.stats import Stats
from equal.testing import FakeOpenAIServer, Fault


def _llm(server, stats, **kw):
    kw.setdefault("backoff_base_s", 0.01)
    return OpenAICompatibleLLM(server.base_url, "fake-model", stats=stats, **kw)


def _docs(n=6):
    return [Document(id=f"d{i}", text=f"Document {i} says the answer is {i}.") for i in range(n)]


def test_extracts_concurrently_with_token_usage_and_key_from_env(monkeypatch):
    monkeypatch.setenv("MY_TEST_KEY", "sk-secret-123")
    stats = Stats()
    with FakeOpenAIServer() as server:
        extractor = LLMExtractor(_llm(server, stats, api_key_env="MY_TEST_KEY", concurrency=4),
                                 ExtractionTask(), stats=stats)
        out = extractor.extract(_docs())
    assert [e.document_id for e in out] == [f"d{i}" for i in range(6)]
    assert all(len(e.pairs) == 1 and e.parse_ok for e in out)
    assert "Document 3" in out[3].pairs[0].answer
    assert stats.get("llm_calls") == 6 and stats.get("tokens_in") > 0 and stats.get("tokens_out") > 0
    assert all(h.get("Authorization") == "Bearer sk-secret-123" for h in server.headers)
    body = server.bodies[0]
    assert body["response_format"]["type"] == "json_schema" and body["temperature"] == 0.0


def test_retries_each_fault_kind_and_counts_it():
    faults = [Fault(status=500), Fault(status=429, retry_after=0.05), Fault(sleep=6),
              Fault(body="{truncated"), Fault(body=json.dumps({"choices": []})), Fault(drop=True),
              Fault(oversized=50_000), Fault(body=json.dumps({"choices": [{"message": {"content": 7}}]}))]
    stats = Stats()
    with FakeOpenAIServer(faults=faults) as server:
        # only the sleeping answer may time out: the limit leaves room for a loaded machine's stalls
        llm = _llm(server, stats, concurrency=1, timeout_s=2, max_retries=10, max_response_bytes=20_000)
        out = LLMExtractor(llm, ExtractionTask(), stats=stats).extract(_docs(2))
    assert all(e.parse_ok and e.pairs for e in out)
    counters = stats.as_dict()
    assert counters["llm_http_5xx"] == 1 and counters["llm_http_429"] == 1
    assert counters["llm_timeouts"] == 1 and counters["llm_malformed_responses"] == 2
    assert counters["llm_empty_choices"] == 1 and counters["llm_oversized_responses"] == 1
    assert counters["llm_connection_errors"] == 1
    assert counters["llm_retries"] == 8 and counters["llm_calls"] == 2


def test_an_answer_that_stays_garbled_gives_up_on_that_document_only():
    """The server is up but one prompt keeps getting junk: that document gets no pairs, the batch goes on."""
    stats = Stats()
    junk = [Fault(body="{not json")] * 3
    with FakeOpenAIServer(faults=junk) as server:
        llm = _llm(server, stats, concurrency=1, max_retries=2)
        out = LLMExtractor(llm, ExtractionTask(), stats=stats).extract(_docs(3))
    assert [bool(e.pairs) for e in out] == [False, True, True]
    assert "malformed_responses" in out[0].generation.error and out[0].generation.failed
    assert stats.get("llm_failed_requests") == 1 and stats.get("llm_calls") == 2


def test_server_that_stays_down_raises_a_clear_error():
    stats = Stats()
    with FakeOpenAIServer(faults=[Fault(status=503)] * 10) as server:
        with pytest.raises(ServerUnavailable, match="run the same command again"):
            _llm(server, stats, max_retries=2, concurrency=1).generate(
                [ExtractionTask().format_input(_docs(1)[0])])
    with FakeOpenAIServer(faults=[Fault(status=429)] * 10) as server:
        with pytest.raises(RateLimited):
            _llm(server, stats, max_retries=1, concurrency=1).generate(
                [ExtractionTask().format_input(_docs(1)[0])])


def test_auth_failure_is_not_retried(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer(faults=[Fault(status=401)]) as server:
        with pytest.raises(BackendError, match="API key"):
            _llm(server, Stats()).generate([ExtractionTask().format_input(_docs(1)[0])])
        assert server.total_requests == 1


def test_response_cache_means_no_request_is_sent_twice(tmp_path):
    docs = _docs(5)
    with FakeOpenAIServer() as server:
        for _ in range(2):
            cache = ResponseCache(tmp_path / "responses.sqlite")
            stats = Stats()
            out = LLMExtractor(_llm(server, stats), ExtractionTask(), cache, stats).extract(docs + docs[:2])
            cache.close()
            assert len(out) == 7
        assert server.total_requests == 5
        assert max(server.requests.values()) == 1
    assert stats.get("llm_cache_hits") == 5  # second pass: all five from the cache


def test_garbage_answer_is_a_counted_parse_failure_with_raw_text():
    stats = Stats()
    with FakeOpenAIServer(answer=lambda messages: "Sure! Here are some pairs: none") as server:
        out = LLMExtractor(_llm(server, stats), ExtractionTask(), stats=stats).extract(_docs(2))
    assert [e.parse_ok for e in out] == [False, False]
    assert out[0].generation.text.startswith("Sure!")
    assert stats.get("parse_failed") == 2

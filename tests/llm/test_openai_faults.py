"""A misbehaving OpenAI-compatible server: every fault is retried, counted or reported, never cached.

Each test plays one fault of a server on loopback that answers HTML with
status 200, redirects, sends content as a list of parts, omits or garbles
``usage``, nests its body thousands deep or drips its answer one byte at a
time, and checks what the backend, the extractor and a whole run do.
"""

from __future__ import annotations

import json
import logging
import math
import time
import zlib

import pytest
import yaml

from equal import run
from equal.config import load_config
from equal.errors import BackendError, ServerUnavailable
from equal.extraction import ExtractionTask, LLMExtractor
from equal.llm.cache import ResponseCache
from equal.llm.openai import OpenAICompatibleLLM
from equal.records import Document, Generation
from equal.run.budget import Budget
from equal.stats import Stats
from equal.testing import FakeOpenAIServer, Fault, default_answer, document_text
from tests.helpers import make_corpus, make_reference

HTML = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


def _llm(server, stats, **kw):
    kw.setdefault("backoff_base_s", 0.01)
    return OpenAICompatibleLLM(server.base_url, "fake-model", stats=stats, **kw)


def _docs(n=3):
    return [Document(id=f"d{i}", text=f"Document {i} says the answer is {i}.") for i in range(n)]


def _extract(server, docs, stats, cache=None, **kw):
    return LLMExtractor(_llm(server, stats, **kw), ExtractionTask(), cache, stats).extract(docs)


# -- 1. a failed answer is never cached as an answer ------------------------------------------

@pytest.mark.parametrize("fault", [
    Fault(body=HTML, content_type="text/html"),  # a proxy's error page with status 200
    Fault(body="{truncated"),
    Fault(body=json.dumps({"choices": []})),
    Fault(body=json.dumps({"choices": [{"message": {"content": None}}]})),
    Fault(body=json.dumps({"choices": [{"message": {"content": " \n"}}]})),
    Fault(body=json.dumps({"choices": [{"message": {"content": [{"type": "refusal", "refusal": "no"}]}}]})),
], ids=["html-200", "truncated-json", "empty-choices", "null-content", "blank-content", "no-text-part"])
def test_a_failed_answer_is_not_cached_and_the_same_command_retries_exactly_it(tmp_path, caplog, fault):
    docs = _docs(3)

    def d0_fails(messages):
        return fault if "Document 0" in document_text(messages) else None

    cache = ResponseCache(tmp_path / "responses.sqlite")
    stats = Stats()
    with FakeOpenAIServer(fault_for=d0_fails) as server:
        with caplog.at_level(logging.WARNING):
            out = _extract(server, docs, stats, cache, max_retries=1, concurrency=1)
        assert [bool(e.pairs) for e in out] == [False, True, True]
        assert out[0].error and not out[0].parse_ok and stats.get("llm_failed_requests") == 1
        assert len(cache) == 2  # the two answers, not the failure
        assert stats.get("parse_failed") == 0  # nothing was parsed: a failed request, counted as such
        batch_warning = [r.getMessage() for r in caplog.records if "retries exactly those" in r.getMessage()]
        assert len(batch_warning) == 1 and batch_warning[0].startswith("1 of 3 documents")

        server.fault_for, before = None, len(server.bodies)  # the server is fixed
        out = _extract(server, docs, Stats(), cache)
        sent = [document_text(body["messages"]) for body in server.bodies[before:]]
    cache.close()
    assert sent == [docs[0].text]  # exactly the failed document, once
    assert all(e.pairs and e.parse_ok for e in out)


def test_a_failure_cached_by_an_older_version_is_sent_again(tmp_path):
    docs = _docs(3)
    task = ExtractionTask()
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with FakeOpenAIServer() as server:
        llm = _llm(server, Stats())
        keys = [task.format_input(d).key(llm.name) for d in docs]
        # what older versions stored: a failure with an empty text, and an answer with negative usage
        cache.put(keys[0], Generation(text="", metadata={"error": "malformed_responses: malformed response body"}))
        answer = default_answer(list(task.format_input(docs[1]).messages))
        cache.put(keys[1], Generation(text=answer, tokens_in=-12_000_000, tokens_out=-60))
        stats = Stats()
        out = LLMExtractor(llm, task, cache, stats).extract(docs)
        sent = sorted(document_text(body["messages"]) for body in server.bodies)
    assert sent == [docs[0].text, docs[1].text, docs[2].text]
    assert all(e.pairs for e in out) and stats.get("llm_cache_entries_resent") == 2
    fresh = cache.get(keys[0])
    cache.close()
    assert fresh is not None and fresh.text and fresh.tokens_in > 0


def test_an_empty_answer_cached_by_an_older_version_is_sent_again(tmp_path):
    """Older versions cached a `content: null` answer as text "": a rerun must not replay it as no pairs."""
    docs = _docs(2)
    task = ExtractionTask()
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with FakeOpenAIServer() as server:
        llm = _llm(server, Stats())
        key = task.format_input(docs[0]).key(llm.name)
        cache.put(key, Generation(text="", tokens_in=120, tokens_out=1))
        stats = Stats()
        out = LLMExtractor(llm, task, cache, stats).extract(docs)
        sent = sorted(document_text(body["messages"]) for body in server.bodies)
    stored = cache.get(key)
    cache.close()
    assert sent == [docs[0].text, docs[1].text]
    assert all(e.pairs for e in out) and stats.get("llm_cache_entries_resent") == 1
    assert stored is not None and stored.text


def test_content_as_a_list_of_text_parts_is_read():
    stats = Stats()
    with FakeOpenAIServer(fault_for=lambda messages: Fault(content_parts=True)) as server:
        out = _extract(server, _docs(2), stats, max_retries=0)
    assert all(e.parse_ok and len(e.pairs) == 1 for e in out)
    assert "Document 1" in out[1].pairs[0].answer
    assert stats.get("llm_malformed_responses") == 0 and stats.get("llm_failed_requests") == 0


@pytest.mark.parametrize(("location", "advice"), [
    ("https://api.example.com/v1/chat/completions", "set extraction.base_url to https://api.example.com/v1"),
    ("/gateway/v1/chat/completions", "set extraction.base_url to http://127.0.0.1:{port}/gateway/v1"),
    ("https://login.example.com/sso", "the part before /chat/completions"),
], ids=["absolute", "relative", "elsewhere"])
def test_a_redirect_stops_at_once_and_says_which_url_to_use(location, advice):
    with FakeOpenAIServer(fault_for=lambda messages: Fault(status=302, location=location)) as server:
        port = server.base_url.split(":")[2].split("/")[0]
        with pytest.raises(BackendError) as info:
            _extract(server, _docs(1), Stats(), max_retries=3)
        assert server.total_requests == 1  # a config mistake: not retried
    message = str(info.value)
    assert "redirects (HTTP 302)" in message and advice.format(port=port) in message
    assert "malformed" not in message


def test_a_redirect_to_the_same_url_does_not_advise_the_url_already_set():
    def to_itself(messages):
        return Fault(status=307, location=server.base_url + "/chat/completions")

    with FakeOpenAIServer(fault_for=to_itself) as server:
        with pytest.raises(BackendError) as info:
            _extract(server, _docs(1), Stats(), max_retries=3)
        assert server.total_requests == 1
    message = str(info.value)
    assert "redirects (HTTP 307) to itself" in message
    assert "set extraction.base_url to" not in message and server.base_url in message


def test_the_same_model_behind_another_url_reuses_the_cached_answers(tmp_path):
    """The cache key is the model, prompt and settings: moving the server does not pay every answer again."""
    docs = _docs(3)
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with FakeOpenAIServer() as first:
        out = _extract(first, docs, Stats(), cache)
    with FakeOpenAIServer() as moved:
        stats = Stats()
        again = _extract(moved, docs, stats, cache)
        assert moved.total_requests == 0
    cache.close()
    assert [e.pairs for e in again] == [e.pairs for e in out] and stats.get("llm_cache_hits") == 3


def test_answers_cached_under_the_older_key_with_the_url_are_still_read(tmp_path):
    """Older versions put the server's URL in the key: their caches keep answering, and their rows move over."""
    docs = _docs(2)
    task = ExtractionTask()
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with FakeOpenAIServer() as server:
        llm = _llm(server, Stats())
        for document in docs:
            request = task.format_input(document)
            older_key = request.key(f"openai:{server.base_url}:fake-model:schema")
            cache.put(older_key, Generation(text=default_answer(list(request.messages)), tokens_in=50, tokens_out=9))
        stats = Stats()
        out = LLMExtractor(llm, task, cache, stats).extract(docs)
        assert server.total_requests == 0
        moved = [cache.get(task.format_input(d).key(llm.name)) for d in docs]
    cache.close()
    assert all(e.pairs for e in out) and stats.get("llm_cache_hits") == 2
    assert [e.generation.tokens_in for e in out] == [50, 50]
    assert all(g is not None and g.tokens_in == 50 for g in moved)  # found at once next time


def _run_config(tmp_path, base_url, **overrides):
    corpus = make_corpus(tmp_path / "corpus.jsonl")
    reference = make_reference(tmp_path / "reference.jsonl")
    settings = {
        "corpus.path": str(corpus), "corpus.id_field": "id", "reference.path": str(reference),
        "embedding.model": "hashing-256", "clustering.k": 8, "seed": 3,
        "extraction.extractor": "openai", "extraction.model": "fake", "extraction.base_url": base_url,
        "extraction.max_retries": 0, "extraction.concurrency": 4, "extraction.timeout_s": 10,
        "output.dir": str(tmp_path / "run"),
    }
    settings.update(overrides)
    nested: dict = {}  # a YAML file, as a user writes it: overrides cannot set a key to null
    for dotted, value in settings.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(nested))
    return load_config(path)


@pytest.mark.parametrize("one_in", [3, 1], ids=["a-third", "every-document"])
def test_a_run_that_got_html_pages_resends_exactly_those_documents(tmp_path, one_in):
    """A proxy answers some (or all) prompts with an HTML page: the run goes on, running it again fixes them."""
    failed: set[str] = set()

    def html_page(messages):
        text = document_text(messages)
        if zlib.crc32(text.encode()) % one_in:
            return None
        failed.add(text)
        return Fault(body=HTML, content_type="text/html")

    # random selection takes the same documents whatever the answers, so both runs pick the same ones
    overrides = {"bandit.selection": "random", "budget.fraction": 0.2}
    with FakeOpenAIServer(fault_for=html_page) as server:
        config = _run_config(tmp_path, server.base_url, **overrides)
        first = run(config)
        first_sent = {document_text(body["messages"]) for body in server.bodies}
        assert failed and failed <= first_sent and (failed == first_sent) == (one_in == 1)
        assert first.counters["llm_failed_requests"] == len(failed)

        server.fault_for, before = None, len(server.bodies)  # the proxy is fixed; the same command again
        second = run(config)
        second_sent = [document_text(body["messages"]) for body in server.bodies[before:]]
    texts = {json.loads(line)["text"]: json.loads(line)["id"] for line in (tmp_path / "corpus.jsonl").open()}
    assert not {p.document_id for p in first.pairs} & {texts[t] for t in failed}
    assert sorted(second_sent) == sorted(failed)  # exactly the failed documents, each once
    assert {texts[t] for t in failed} <= {p.document_id for p in second.pairs}
    assert len(second.pairs) == len(first.pairs) + len(failed)


# -- 2. the token budget holds whatever the server reports ------------------------------------

def test_missing_usage_is_estimated_from_characters_and_warned_once(caplog):
    stats = Stats()
    docs = _docs(3)
    with caplog.at_level(logging.WARNING), \
            FakeOpenAIServer(fault_for=lambda messages: Fault(omit_usage=True)) as server:
        out = _extract(server, docs, stats)
    task = ExtractionTask()
    for document, extraction in zip(docs, out):
        prompt = "".join(m["content"] for m in task.format_input(document).messages)
        assert extraction.generation.tokens_in == math.ceil(len(prompt) / 4)
        assert extraction.generation.tokens_out == math.ceil(len(extraction.generation.text) / 4) > 0
    assert stats.get("llm_usage_missing") == 3
    assert stats.get("tokens_in") == sum(e.generation.tokens_in for e in out)
    assert len([r for r in caplog.records if "reports no token usage" in r.getMessage()]) == 1


def test_negative_usage_is_a_malformed_answer_not_a_refund():
    stats = Stats()
    usage = json.dumps({"prompt_tokens": -12_000_000, "completion_tokens": -60})
    with FakeOpenAIServer(faults=[Fault(usage=usage)]) as server:
        out = _extract(server, _docs(1), stats, max_retries=2)
    assert out[0].pairs and stats.get("llm_malformed_responses") == 1 and stats.get("llm_retries") == 1
    assert out[0].generation.tokens_in > 0 and out[0].generation.tokens_out > 0


def test_an_answer_cached_without_usage_by_an_older_version_is_charged_an_estimate(tmp_path):
    docs = _docs(1)
    task = ExtractionTask()
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with FakeOpenAIServer() as server:
        llm = _llm(server, Stats())
        request = task.format_input(docs[0])
        answer = default_answer(list(request.messages))
        cache.put(request.key(llm.name), Generation(text=answer))  # 0 tokens: what a no-usage server left
        out = LLMExtractor(llm, task, cache, Stats()).extract(docs)
        assert server.total_requests == 0  # the answer is kept, not paid again
    cache.close()
    prompt = "".join(m["content"] for m in request.messages)
    assert out[0].pairs and out[0].generation.tokens_in == math.ceil(len(prompt) / 4)
    assert out[0].generation.tokens_out == math.ceil(len(answer) / 4)


def test_a_budget_refuses_a_negative_charge():
    budget = Budget(max_tokens=100)
    with pytest.raises(ValueError, match="negative"):
        budget.charged(1, -12_000_060)
    assert budget.tokens == 0


def test_a_token_budget_stops_a_run_whose_server_reports_no_usage(tmp_path):
    # (the warm-up, 20 passages here, spends about 5,000 estimated tokens: the cap falls in the bandit rounds)
    overrides = {"budget.fraction": None, "budget.tokens": 8000}
    with FakeOpenAIServer(fault_for=lambda messages: Fault(omit_usage=True)) as server:
        result = run(_run_config(tmp_path, server.base_url, **overrides))
        calls = server.total_requests
    summary = result.summary.to_json()
    rounds = [json.loads(line) for line in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert summary["tokens_spent"] == rounds[-1]["tokens_spent"] >= 8000  # it stopped at the token cap...
    assert len(rounds) >= 2 and rounds[-2]["tokens_spent"] < 8000  # ...in the first round that reached it
    assert calls == summary["documents_extracted"] < 100  # of 200 passages


BAD_USAGE = {
    "negative": Fault(usage='{"prompt_tokens": -12000000, "completion_tokens": -60}'),
    "string": Fault(usage='"lots"'),
    "not-an-object": Fault(usage='[1, 2]'),
    "1e400": Fault(usage='{"prompt_tokens": 1e400, "completion_tokens": 1e400}'),
    "1e30": Fault(usage='{"prompt_tokens": 1e30, "completion_tokens": ' + str(10**30) + "}"),
}


@pytest.mark.parametrize("fault", list(BAD_USAGE.values()), ids=list(BAD_USAGE))
def test_every_attempt_with_unusable_usage_is_charged_an_estimate(fault):
    """An answer that stays malformed is a failure, but the three attempts the server answered are not free."""
    stats = Stats()
    docs = _docs(1)
    with FakeOpenAIServer(fault_for=lambda messages: fault) as server:
        out = _extract(server, docs, stats, max_retries=2)
        assert server.total_requests == 3
    generation = out[0].generation
    prompt = "".join(m["content"] for m in ExtractionTask().format_input(docs[0]).messages)
    assert generation.failed and not out[0].pairs
    assert generation.tokens_in == 3 * math.ceil(len(prompt) / 4)  # each attempt: the prompt's estimate
    assert generation.tokens_out > 0
    # charged tokens are counted like any other; the failure is not an answer, so not a call
    assert stats.get("tokens_in") == generation.tokens_in and stats.get("tokens_out") == generation.tokens_out
    assert stats.get("llm_calls") == 0 and stats.get("llm_failed_requests") == 1


def test_an_answer_that_needed_retries_carries_the_cost_of_every_attempt(tmp_path):
    """The tokens of the malformed attempts before it go with the answer, into the cache and the budget."""
    docs = _docs(1)
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with FakeOpenAIServer(faults=[BAD_USAGE["string"], Fault(oversized=50_000)]) as server:
        out = _extract(server, docs, Stats(), cache, max_retries=2, max_response_bytes=20_000)
        key = ExtractionTask().format_input(docs[0]).key(_llm(server, Stats()).name)
    stored = cache.get(key)
    cache.close()
    request = ExtractionTask().format_input(docs[0])
    prompt = "".join(m["content"] for m in request.messages)
    words = sum(len(m["content"].split()) for m in request.messages)  # what the fake server reports
    assert out[0].pairs
    # the malformed answer and the oversized one are estimated, the good one counted as reported
    assert out[0].generation.tokens_in == 2 * math.ceil(len(prompt) / 4) + words
    assert out[0].generation.tokens_out > request.max_tokens  # the oversized answer: max_tokens at least
    assert stored is not None and stored.tokens_in == out[0].generation.tokens_in


@pytest.mark.parametrize("fault", [BAD_USAGE["string"], BAD_USAGE["1e400"], Fault(oversized=5_000_000)],
                         ids=["usage-string", "usage-1e400", "body-5MB"])
def test_a_token_budget_holds_against_a_server_whose_answers_stay_unusable(tmp_path, fault):
    """Under budget.tokens, a server whose every answer is malformed is stopped like a good one."""
    overrides = {"budget.fraction": None, "budget.tokens": 1000, "extraction.max_retries": 2}
    with FakeOpenAIServer(fault_for=lambda messages: fault) as server:
        result = run(_run_config(tmp_path, server.base_url, **overrides))
        sent = server.total_requests
    summary, counters = result.summary.to_json(), result.counters
    assert counters["warmup_cut_by_budget"] == 1 and counters["llm_failed_requests"] == summary["warmup_documents"]
    assert sent == 3 * summary["documents_extracted"] <= 3 * 8  # one warm-up batch, three attempts each
    assert summary["tokens_spent"] >= 1000
    assert summary["tokens_spent"] == counters["tokens_in"] + counters["tokens_out"]


# -- 6. a total deadline per request ----------------------------------------------------------

def test_an_answer_dripped_one_byte_at_a_time_is_a_timeout_not_a_hang():
    stats = Stats()
    started = time.monotonic()
    # each byte comes well within timeout_s, the whole answer would take about half a minute
    with FakeOpenAIServer(faults=[Fault(drip=0.05)]) as server:
        out = _extract(server, _docs(1), stats, timeout_s=2, max_retries=2)
    assert time.monotonic() - started < 10
    assert out[0].pairs and stats.get("llm_timeouts") == 1 and stats.get("llm_calls") == 1


def test_a_server_that_always_drips_stops_the_run_with_advice():
    started = time.monotonic()
    with FakeOpenAIServer(fault_for=lambda messages: Fault(drip=0.05)) as server:
        with pytest.raises(ServerUnavailable, match="run the same command again"):
            _extract(server, _docs(1), Stats(), timeout_s=0.3, max_retries=1)
    assert time.monotonic() - started < 15


# -- 7. odd usage fields and deep bodies are malformed answers, never a crash ------------------

DEEP = '{"choices": ' + "[" * 10_000 + "]" * 10_000 + "}"


@pytest.mark.parametrize("fault", [
    Fault(usage='"lots"'),
    Fault(usage='[1, 2]'),
    Fault(usage='{"prompt_tokens": "lots", "completion_tokens": 3}'),
    Fault(usage='{"prompt_tokens": 1e400, "completion_tokens": 3}'),
    Fault(usage='{"prompt_tokens": 12, "completion_tokens": ' + str(10**30) + "}"),
    Fault(usage='{"prompt_tokens": 12.5, "completion_tokens": 3}'),
    Fault(usage='{"prompt_tokens": -1, "completion_tokens": 3}'),
    Fault(body=DEEP),
], ids=["usage-string", "usage-list", "tokens-string", "tokens-1e400", "tokens-10e30", "tokens-fraction",
        "tokens-negative", "body-nested-10000"])
def test_odd_usage_or_a_deep_body_is_a_counted_malformed_answer(tmp_path, fault):
    stats = Stats()
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with FakeOpenAIServer(faults=[fault]) as server:
        out = _extract(server, _docs(1), stats, cache, max_retries=2)
        key = ExtractionTask().format_input(_docs(1)[0]).key(_llm(server, Stats()).name)
    stored = cache.get(key)
    cache.close()
    assert out[0].pairs and stats.get("llm_malformed_responses") == 1 and stats.get("llm_calls") == 1
    assert server.total_requests == 2
    assert stored is not None and 0 < stored.tokens_in < 10**9 and 0 < stored.tokens_out < 10**9


# -- wiring: the warm-up obeys budget.tokens; a raw surrogate in the reply; `equal extract` -----

def test_a_token_budget_smaller_than_the_warm_up_stops_inside_it(tmp_path):
    # the 20-document warm-up costs about 3,000 tokens here; the cap is reached in its first batches
    overrides = {"budget.fraction": None, "budget.tokens": 1000}
    with FakeOpenAIServer() as server:
        result = run(_run_config(tmp_path, server.base_url, **overrides))
        calls = server.total_requests
    summary, counters = result.summary.to_json(), result.counters
    assert counters["warmup_cut_by_budget"] == 1
    assert calls == summary["documents_extracted"] == summary["warmup_documents"] <= 16
    assert 1000 <= summary["tokens_spent"] < 1000 + 8 * 200  # over by at most one batch of 8 documents


def test_a_lone_surrogate_in_the_servers_reply_is_repaired_before_it_is_cached(tmp_path):
    def answer(messages):
        # a Python str holding U+D800: the server's JSON carries it as the escape \ud800
        return '{"pairs": [{"question": "What is \ud800 here?", "answer": "' + document_text(messages)[:40] + '"}]}'

    stats, cache = Stats(), ResponseCache(tmp_path / "responses.sqlite")
    with FakeOpenAIServer(answer=answer) as server:
        out = _extract(server, _docs(2), stats, cache=cache)
        again = _extract(server, _docs(2), Stats(), cache=cache)
        assert server.total_requests == 2  # the second time, both answers came from the cache
    for extraction in out + again:
        assert extraction.pairs and extraction.pairs[0].question == "What is \ufffd here?"
        extraction.pairs[0].as_text().encode("utf-8")  # storable and embeddable
    assert stats.get("repaired_surrogates") == 2


def test_extract_all_writes_no_line_for_a_failed_answer_and_retries_it(tmp_path):
    from equal.run.extract_all import extract_all

    config = _run_config(tmp_path, "http://unused/v1", **{"corpus.limit": 12})
    out = tmp_path / "extracted.jsonl"
    broken: set[str] = set()

    def html_for_some(messages):
        text = document_text(messages)
        if zlib.crc32(text.encode()) % 3:
            return None
        broken.add(text)
        return Fault(body=HTML, content_type="text/html")

    with FakeOpenAIServer(fault_for=html_for_some) as server:
        config.extraction.base_url = server.base_url
        first = extract_all(config, out)
        written = {json.loads(line)["text"] for line in out.read_text().splitlines()}
        assert broken and first["documents_failed"] == len(broken) and not written & broken
        server.fault_for, before = None, len(server.bodies)
        second = extract_all(config, out)
        resent = {document_text(body["messages"]) for body in server.bodies[before:]}
    assert resent == broken and "documents_failed" not in second
    assert len(out.read_text().splitlines()) == 12


def test_a_rerun_keeps_what_the_answers_cost_beside_its_own_figures(tmp_path):
    from typer.testing import CliRunner

    from equal.cli.main import app
    from equal.run.schema import read_stats

    with FakeOpenAIServer() as server:
        config = _run_config(tmp_path, server.base_url, **{"budget.fraction": 0.1})
        first = run(config)
        again = run(config)  # replays every answer from the cache
        sent = server.total_requests
    assert first.counters["llm_calls"] == sent and again.counters.get("llm_calls", 0) == 0
    paid = read_stats(tmp_path / "run").paid
    assert paid.llm_calls == sent
    assert paid.tokens == first.counters["tokens_in"] + first.counters["tokens_out"] > 0
    assert paid.seconds >= first.summary.wall_seconds
    shown = CliRunner().invoke(app, ["inspect", str(tmp_path / "run")], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and f"{sent} calls, {paid.tokens:,} tokens" in shown.output
    # a run that was killed is not counted (its answers count as cache hits of the run that finished): say so
    assert "paid, finished runs here" in shown.output


def test_answers_cut_at_max_tokens_are_counted_and_keep_their_finished_pairs():
    """An answer that used every output token it was allowed is counted (answers_at_max_tokens); the pairs it
    finished before the cut are kept."""
    def cut(messages):  # two whole pairs, then a third cut off mid-string, as max_tokens leaves it
        return '{"pairs": [{"question": "What is 1?", "answer": "One."}, {"question": "What is 2?", "answer": ' \
               '"Two."}, {"question": "What is 3?", "answer": "Thr'

    with FakeOpenAIServer(answer=cut) as server:  # the fake counts an answer's words as its output tokens
        stats = Stats()
        words = len(cut([]).split())
        at_cap = LLMExtractor(_llm(server, stats), ExtractionTask(max_tokens=words), None, stats).extract(_docs(2))
        assert stats.get("answers_at_max_tokens") == 2
        assert [[p.question for p in e.pairs] for e in at_cap] == \
            [["What is 1?", "What is 2?"]] * 2
        roomy = Stats()
        LLMExtractor(_llm(server, roomy), ExtractionTask(max_tokens=words + 1), None, roomy).extract(_docs(2))
        assert roomy.get("answers_at_max_tokens") == 0

"""The quality phase of a run: every pair graded, the LLM grade and refine passes, and ``export --min-grade``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from equal import run
from equal.config import dump_config
from equal.output.export import ExportFilters, filter_pairs
from equal.output.formats import from_record, to_record
from equal.quality import ReferenceShape, grade
from equal.records import PairGrade, Provenance, QAPair
from equal.report import load_pairs
from equal.testing import FakeOpenAIServer
from equal.testing.fake_server import default_answer, document_text

_QUESTION = re.compile(r"Question: (.*?)\nAnswer:", re.DOTALL)


def _pair_question(prompt: str) -> str:
    """The question of the pair a grade or rewrite prompt is about (the examples before it have questions too)."""
    match = _QUESTION.search(prompt.split("<pair>", 1)[1])
    assert match is not None
    return match.group(1)


class _Grader:
    """A fake LLM that extracts, grades (2 for a question that points at its text, else 5) and rewrites,
    counting each grade and rewrite prompt it answers."""

    def __init__(self, refine_delay: float = 0.0) -> None:
        self.refine_delay = refine_delay
        self.answered: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, messages: list[dict[str, str]]) -> str:
        user = messages[-1]["content"]
        if "Grade the pair" in user:
            with self._lock:
                self.answered[user] += 1
            pointing = "the text" in _pair_question(user)
            return json.dumps({"grade": 2 if pointing else 5})
        if "Rewrite the pair" in user:
            time.sleep(self.refine_delay)
            with self._lock:
                self.answered[user] += 1
            question = _pair_question(user).replace("the text", "the Python documentation")
            return json.dumps({"question": question, "answer": "A complete answer, step by step: " + question})
        return default_answer(messages)

    def count(self, kind: str) -> int:
        return sum(n for prompt, n in self.answered.items() if kind in prompt)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "dataset.jsonl").read_text().splitlines()]


def test_every_pair_written_carries_the_checks_grade_deterministically(replay_config, tmp_path):
    first = run(replay_config(**{"output.dir": str(tmp_path / "a")}))
    second = run(replay_config(**{"output.dir": str(tmp_path / "b")}))
    records = _records(first.run_dir)
    assert records and all({"grade", "grade_flags", "graded_by"} <= set(r["provenance"]) for r in records)
    assert (first.run_dir / "dataset.jsonl").read_text() == (second.run_dir / "dataset.jsonl").read_text()
    shape = ReferenceShape.of(load_pairs(first.run_dir))  # any shape: the grade is a function of pair and shape
    pair = first.pairs[0]
    assert grade(pair, shape) == grade(QAPair(pair.question, pair.answer), shape)
    by_grade = Counter(r["provenance"]["grade"] for r in records)
    assert {k: v for k, v in first.counters.items() if k.startswith("pairs_grade:")} == \
        {f"pairs_grade:{g}": n for g, n in by_grade.items()}


@pytest.mark.parametrize("fmt", ["messages", "alpaca", "sharegpt"])
def test_a_grade_and_an_original_survive_export_and_reading_back(fmt):
    provenance = Provenance("doc", 3, 2, 0.5, "bandit", grade=PairGrade(2, ("points_at_passage",), "llm"),
                            original=("What does the text say?", "x"))
    pair = QAPair("What is 2 + 2?", "4, since 2 + 2 = 4.", document_id="doc#p0", provenance=provenance)
    back = from_record(json.loads(json.dumps(to_record(pair, fmt))))
    assert back == pair and back.metadata == {}


def test_a_grade_survives_parquet(tmp_path):
    import pyarrow.parquet as pq

    from equal.output.export import export_pairs

    graded = Provenance("d", 0, 0, 0.1, "bandit", grade=PairGrade(4, ("short_answer",)))
    refined = Provenance("e", 1, 0, 0.2, "bandit", grade=PairGrade(5), original=("q0", "a0"))
    pairs = [QAPair("q1?", "a1", "d", provenance=graded), QAPair("q2?", "a2", "e", provenance=refined),
             QAPair("q3?", "a3", "f", provenance=Provenance("f", 2, 0, 0.3, "warmup"))]
    path = export_pairs(pairs, tmp_path / "out.parquet", "parquet")
    assert [from_record(row) for row in pq.read_table(path).to_pylist()] == pairs


def test_a_provenance_with_a_malformed_grade_keeps_it_as_free_metadata():
    base = {"source_id": "s", "cluster": 0, "round": 0, "pull_reward": 0.1, "stage": "bandit"}
    for bad in ({"grade": 7}, {"grade": True}, {"grade": 3, "grade_flags": "short"}, {"grade": 3, "graded_by": "me"}):
        typed, rest = Provenance.from_json({**base, **bad})
        assert typed is not None and typed.grade is None and rest == bad


def _graded(g: int, reward: float = 0.5) -> QAPair:
    return QAPair(f"question {g} {reward}?", f"answer {g} {reward}", f"d{g}{reward}",
                  provenance=Provenance("s", 0, 0, reward, "bandit", grade=PairGrade(g)))


def test_min_grade_removes_exactly_the_pairs_graded_below_it():
    pairs = [_graded(g, r) for g in (1, 2, 3, 4, 5) for r in (0.1, 0.2)]
    pairs.append(QAPair("ungraded?", "yes", "u", provenance=Provenance("u", 0, 0, 0.5, "bandit")))
    kept, removed = filter_pairs(pairs, ExportFilters(min_grade=4, near_duplicate_threshold=None))
    assert [p.provenance.grade.grade for p in kept] == [4, 4, 5, 5]  # type: ignore[union-attr]
    assert removed == {"below_min_grade": 6, "without_grade": 1}
    kept, removed = filter_pairs(pairs, ExportFilters(min_grade=1, near_duplicate_threshold=None))
    assert len(kept) == 10 and removed == {"without_grade": 1}


def _mixed(messages: list[dict[str, str]]) -> str:
    """Half the documents get a question that points at its text (graded lower), half one that does not."""
    doc = document_text(messages)
    if len(doc) % 2:
        return default_answer(messages)
    return json.dumps({"pairs": [{"question": f"Which words open this: {doc[:40]}?", "answer": doc[:200]}]})


def test_export_min_grade_on_a_run(replay_config, tmp_path):
    with FakeOpenAIServer(answer=_mixed) as server:
        result = run(_llm_config(replay_config, server, tmp_path / "run"))
    grades = Counter(p.provenance.grade.grade for p in result.pairs)  # type: ignore[union-attr]
    assert len(grades) > 1, "the replayed pairs should not all share one grade"
    threshold = max(grades)
    out = tmp_path / "kept.jsonl"
    done = subprocess.run([sys.executable, "-m", "equal.cli.main", "export", str(result.run_dir), "--out", str(out),
                           "--min-grade", str(threshold), "--near-duplicates", "1"],
                          capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    below = sum(n for g, n in grades.items() if g < threshold)
    assert summary["removed"].get("below_min_grade") == below
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert kept and all(r["provenance"]["grade"] >= threshold for r in kept)


def test_min_grade_on_a_data_set_without_grades_says_what_to_do(replay_config, tmp_path):
    run_dir = run(replay_config()).run_dir
    records = _records(run_dir)
    for record in records:  # as an equal before grades wrote it
        for key in ("grade", "grade_flags", "graded_by"):
            del record["provenance"][key]
    (run_dir / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    done = subprocess.run([sys.executable, "-m", "equal.cli.main", "export", str(run_dir), "--out",
                           str(tmp_path / "x.jsonl"), "--min-grade", "3"], capture_output=True, text=True)
    message = " ".join(done.stderr.split())
    assert done.returncode == 2 and "holds no grades" in message and "run its command again" in message


def _llm_config(replay_config, server: FakeOpenAIServer, run_dir: Path, **quality):
    return replay_config(**{"extraction.extractor": "openai", "extraction.model": "fake",
                            "extraction.base_url": server.base_url, "extraction.concurrency": 2,
                            "output.dir": str(run_dir), **{f"quality.{k}": v for k, v in quality.items()}})


def test_the_llm_grade_replaces_the_checks_grade_and_is_paid_once(replay_config, tmp_path):
    grader = _Grader()
    with FakeOpenAIServer(answer=grader) as server:
        config = _llm_config(replay_config, server, tmp_path / "run", llm_grade=True)
        first = run(config)
        pairs = first.counters["pairs_written"]
        assert grader.count("Grade the pair") == pairs == first.counters["grade_calls"]
        assert all(p.provenance.grade.source == "llm" for p in first.pairs)  # type: ignore[union-attr]
        assert {p.provenance.grade.grade for p in first.pairs} == {2}  # type: ignore[union-attr]
        # the checks' flags stay beside the LLM's grade
        assert all("points_at_passage" in p.provenance.grade.flags for p in first.pairs)  # type: ignore[union-attr]
        assert first.summary.paid.llm_calls == first.counters["llm_calls"] + pairs  # type: ignore[union-attr]
        second = run(config)
        assert grader.count("Grade the pair") == pairs  # every grade from the cache
        assert second.counters.get("grade_calls", 0) == 0 and second.counters["grade_cache_hits"] == pairs
        assert _records(first.run_dir) == _records(second.run_dir)


def test_the_grade_pass_stops_at_the_token_cap(replay_config, tmp_path):
    grader = _Grader()
    with FakeOpenAIServer(answer=grader) as server:
        free = run(_llm_config(replay_config, server, tmp_path / "free"))
        cap = free.summary.tokens_spent + 1  # room for a chunk of grades at most
        capped = run(replay_config(**{"extraction.extractor": "openai", "extraction.model": "fake",
                                      "extraction.base_url": server.base_url, "budget.tokens": cap,
                                      "budget.fraction": 0.2, "quality.llm_grade": True,
                                      "output.dir": str(tmp_path / "capped")}))
    sent = capped.counters.get("grade_calls", 0)
    assert 0 < sent < capped.counters["pairs_written"]
    assert capped.counters["grade_not_sent"] == capped.counters["pairs_written"] - sent
    graded_by = Counter(p.provenance.grade.source for p in capped.pairs)  # type: ignore[union-attr]
    assert graded_by == {"llm": sent, "checks": capped.counters["pairs_written"] - sent}


def test_refine_rewrites_kept_pairs_and_keeps_the_original(replay_config, tmp_path):
    grader = _Grader()
    with FakeOpenAIServer(answer=grader) as server:
        result = run(_llm_config(replay_config, server, tmp_path / "run", refine=True, refine_min_grade=1))
    records = _records(result.run_dir)
    assert result.counters["pairs_refined"] == len(records) == result.counters["refine_calls"]
    for record in records:
        original = record["provenance"]["original"]
        assert "the text" in original["question"]
        assert "the Python documentation" in record["messages"][0]["content"]
        assert record["messages"][1]["content"].startswith("A complete answer")
        assert "points_at_passage" not in record["provenance"]["grade_flags"]  # the rewrite is graded again


def test_refine_only_rewrites_pairs_graded_at_least_its_minimum(replay_config, tmp_path):
    grader = _Grader()
    with FakeOpenAIServer(answer=grader) as server:
        result = run(_llm_config(replay_config, server, tmp_path / "run", llm_grade=True, refine=True,
                                 refine_min_grade=3))
    # the fake grader gives 2 to every extracted pair: nothing reaches 3, nothing is rewritten
    assert grader.count("Rewrite the pair") == 0 and result.counters.get("pairs_refined", 0) == 0


def test_a_killed_refine_pass_resumes_without_paying_twice(replay_config, tmp_path):
    grader = _Grader(refine_delay=0.05)
    with FakeOpenAIServer(answer=grader) as server:
        clean = run(_llm_config(replay_config, server, tmp_path / "clean", refine=True, refine_min_grade=1))
        total = clean.counters["refine_calls"]
        assert total >= 20
        grader.answered.clear()
        config = _llm_config(replay_config, server, tmp_path / "run", refine=True, refine_min_grade=1)
        path = tmp_path / "config.yaml"
        dump_config(config, path)
        child = subprocess.Popen([sys.executable, "-m", "equal.cli.main", "run", str(path), "-q"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while grader.count("Rewrite the pair") < 8 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
        before = grader.count("Rewrite the pair")
        assert 8 <= before < total, "the kill should land inside the refine pass"
        resumed = run(config)
    twice = [p for p, n in grader.answered.items() if "Rewrite the pair" in p and n > 1]
    assert len(twice) <= 2, "only the answers in flight at the kill (concurrency 2) may be paid again"
    assert resumed.counters["refine_cache_hits"] >= before - 2
    assert grader.count("Rewrite the pair") <= total + 2
    assert _records(resumed.run_dir) == _records(clean.run_dir)

"""Pairs that copy the reference set or a named evaluation set are removed and counted."""

from __future__ import annotations

import json

from equal import run
from equal.filters import NgramIndex
from equal.testing import FakeOpenAIServer, default_answer, document_text


def test_ngram_index_matches_long_overlap_and_short_exact_text():
    index = NgramIndex(["How do I reverse a list in Python without copying it?", "What is a tuple?"], n=8)
    assert index.overlaps("Question: how do I reverse a list in python without copying it, quickly?")
    assert not index.overlaps("How do I reverse a string in Python?")  # 4 shared words only
    assert index.overlaps("what is a TUPLE")  # shorter than n: compared whole, case and punctuation aside
    assert not index.overlaps("What is a tuple used for?")
    assert not index.overlaps("")


def test_run_removes_copied_pairs_before_reward_and_output(tmp_path, replay_config, reference_path):
    reference = [json.loads(line) for line in reference_path.read_text().splitlines()]
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text(json.dumps({"prompt": "Which planet in the solar system has the largest volcano "
                                              "called Olympus Mons on its surface?", "completion": "Mars."}) + "\n")

    def leaky(messages):
        doc = document_text(messages)
        if doc.startswith("python"):  # some on-task documents make the model recite a reference pair
            ref = reference[len(doc) % len(reference)]
            return json.dumps({"pairs": [ref, {"question": "Is this original?", "answer": "Yes, it is new."}]})
        if doc.startswith("river"):
            return json.dumps({"pairs": [{"question": "Which planet in the solar system has the largest "
                                                      "volcano called Olympus Mons on its surface?",
                                          "answer": "Mars."}]})
        return default_answer(messages)

    with FakeOpenAIServer(answer=leaky) as server:
        result = run(replay_config(**{"extraction.extractor": "openai", "extraction.model": "fake",
                                      "extraction.base_url": server.base_url, "budget.fraction": 1.0,
                                      "decontamination.eval_sets": [str(eval_set)]}))
    removed = [json.loads(line) for line in (result.run_dir / "decontaminated.jsonl").read_text().splitlines()]
    assert result.counters["pairs_decontaminated"] == len(removed) > 0
    assert any("Olympus Mons" in r["question"] for r in removed)
    index = NgramIndex([t for r in reference for t in (r["question"], r["answer"])]
                       + ["Which planet in the solar system has the largest volcano called Olympus Mons on its "
                          "surface?"], n=8)
    records = [json.loads(line) for line in result.dataset_path.read_text().splitlines()]
    assert records and not any(index.overlaps(m["content"]) for r in records for m in r["messages"])
    assert any(r["messages"][0]["content"] == "Is this original?" for r in records)  # the rest is kept


def test_decontamination_can_be_switched_off(replay_config):
    result = run(replay_config(**{"decontamination.enabled": False}))
    assert not (result.run_dir / "decontaminated.jsonl").read_text()

"""The whole run loop on a labelled synthetic corpus (hashing embedder, replayed pairs)."""

import dataclasses
import json

import pytest

from equal import run
from equal.bandit import RoundShape, round_shape
from equal.errors import ConfigError, InputError
from equal.testing import FakeOpenAIServer
from tests.helpers import make_corpus


def _relevant_share(result):
    return result.summary.label_shares().get("python", 0.0)


def test_run_writes_dataset_stats_and_round_log(replay_config):
    result = run(replay_config())
    run_dir = result.run_dir
    for name in ("config.yaml", "dataset.jsonl", "stats.json", "rounds.jsonl", "clusters.json"):
        assert (run_dir / name).exists(), name
    records = [json.loads(line) for line in (run_dir / "dataset.jsonl").read_text().splitlines()]
    assert records and len(records) == result.counters["pairs_written"]
    for record in records:
        assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
        assert {"document_id", "cluster", "round", "pull_reward", "stage", "label"} <= set(record["provenance"])
    assert result.summary.documents_extracted == 40  # 20% of 200 documents
    assert result.summary.warmup_documents == 8
    assert {r["provenance"]["stage"] for r in records} == {"warmup", "bandit"}
    rounds = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    assert rounds and all({"cluster", "documents", "reward"} <= set(rounds[0]["pulls"][0]) for _ in rounds)
    doc_ids = [r["provenance"]["document_id"] for r in records]
    assert len(doc_ids) == len(set(doc_ids))  # each document extracted once


def test_equal_beats_random_selection_on_the_relevant_source(replay_config, tmp_path):
    equal_share = [_relevant_share(run(replay_config(seed=s, **{"output.dir": str(tmp_path / f"eq-{s}")})))
                   for s in (0, 1, 2)]
    random_share = [_relevant_share(run(replay_config(seed=s, **{"bandit.selection": "random",
                                                               "output.dir": str(tmp_path / f"rnd-{s}")})))
                    for s in (0, 1, 2)]
    # relevant documents are 20% of the corpus
    assert sum(random_share) / 3 < 0.35
    assert sum(equal_share) / 3 > 1.8 * sum(random_share) / 3


def test_same_seed_same_dataset(replay_config, tmp_path):
    a = run(replay_config(**{"output.dir": str(tmp_path / "a")}))
    b = run(replay_config(**{"output.dir": str(tmp_path / "b")}))
    assert (a.run_dir / "dataset.jsonl").read_text() == (b.run_dir / "dataset.jsonl").read_text()


def test_rerun_resumes_from_cache_without_paying_twice(replay_config, tmp_path):
    with FakeOpenAIServer() as server:
        cfg = replay_config(**{"extraction.extractor": "openai", "extraction.model": "fake",
                               "extraction.base_url": server.base_url})
        first = run(cfg)
        sent = server.total_requests
        second = run(cfg)
    assert sent == first.counters["llm_calls"] == 40
    assert server.total_requests == sent  # the second run sent nothing
    assert second.counters["llm_cache_hits"] == 40
    assert (first.dataset_path.read_text() == second.dataset_path.read_text())


@pytest.mark.parametrize("overrides", [
    {"budget.fraction": 1.0, "budget.llm_calls": 25},
    {"budget.fraction": 1.0, "budget.tokens": 3000, "extraction.extractor": "openai"},
])
def test_budget_in_calls_or_tokens(replay_config, overrides):
    with FakeOpenAIServer() as server:
        if overrides.get("extraction.extractor") == "openai":  # a replay section takes no server keys
            overrides = {**overrides, "extraction.model": "fake", "extraction.base_url": server.base_url}
        result = run(replay_config(**overrides))
    if "budget.llm_calls" in overrides:
        assert result.summary.documents_extracted == 25
    else:
        tokens = result.summary.tokens_spent
        assert 3000 <= tokens < 3000 + 20 * 200  # stops after the round that crosses the cap


def test_sinkhorn_euclidean_centroid_order_and_formats(replay_config):
    result = run(replay_config(**{"reward.solver": "sinkhorn", "reward.cost": "euclidean",
                                  "bandit.document_order": "centroid", "bandit.alpha_schedule": "decaying",
                                  "output.format": "sharegpt", "reward.offset": 0.12}))
    first = json.loads(result.dataset_path.read_text().splitlines()[0])
    assert first["conversations"][0]["from"] == "human"
    assert result.summary.reward_offset == 0.12


def test_parquet_output_has_provenance_as_a_typed_struct_even_with_mixed_labels(replay_config, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from equal.output.formats import read_dataset

    corpus = make_corpus(tmp_path / "corpus.jsonl")
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    for i, row in enumerate(rows):  # labels of three types, as a CSV or a hand-made JSONL may hold them
        row["source"] = [row["source"], i, None][i % 3]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = {"corpus.path": str(corpus), "budget.fraction": 0.5}
    result = run(replay_config(**overrides, **{"output.format": "parquet"}))
    table = pq.read_table(result.dataset_path)
    assert table.num_rows == result.counters["pairs_written"] > 0
    provenance = table.schema.field("provenance").type
    assert pa.types.is_struct(provenance)
    assert {provenance.field(n).type for n in ("cluster", "round")} == {pa.int64()}
    assert provenance.field("pull_reward").type == pa.float64() and provenance.field("label").type == pa.string()
    # read back, it is the JSONL data set of the same run, labels as text
    jsonl = run(replay_config(**overrides, **{"output.dir": str(tmp_path / "jsonl")}))
    as_jsonl = read_dataset(jsonl.run_dir)
    for pair in as_jsonl:
        if pair.provenance.label is not None:
            pair.provenance = dataclasses.replace(pair.provenance, label=str(pair.provenance.label))
    assert read_dataset(result.run_dir) == as_jsonl


def test_more_clusters_than_documents_is_a_clear_error(replay_config):
    with pytest.raises(ConfigError, match="lower clustering.k"):
        run(replay_config(**{"clustering.k": 500}))


def test_too_small_reference_is_a_clear_error(replay_config, tmp_path):
    path = tmp_path / "tiny.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n')
    with pytest.raises(InputError, match="fewer than the 10 needed"):
        run(replay_config(**{"reference.path": str(path)}))


def test_copies_of_one_reference_example_count_once_toward_the_minimum(replay_config, tmp_path):
    from equal.corpus import read_reference
    from equal.stats import Stats

    path = tmp_path / "copies.jsonl"
    path.write_text('{"question": "How do I sort a list?", "answer": "Use sorted()."}\n' * 20
                    + '{"question": "How do I  sort a list? ", "answer": "Use sorted()."}\n')
    with pytest.raises(InputError, match="1 distinct usable example") as info:
        run(replay_config(**{"reference.path": str(path)}))
    assert "20 repeat" in str(info.value) and "fewer than the 10 needed" in str(info.value)
    stats = Stats()
    pairs = read_reference(path, min_examples=1, stats=stats)
    assert len(pairs) == 21 and stats.get("reference_duplicates") == 20  # kept as given, counted


def test_round_shape():
    assert round_shape(73_000, 1000, "auto", "auto") == RoundShape(50, 10)  # the released setting at paper scale
    assert round_shape(40, 16, "auto", "auto") == RoundShape(1, 2)
    assert round_shape(1000, 3, 50, 10) == RoundShape(3, 10)  # never more clusters than exist


def _reference_similarity(config):
    """Each document's base-model cosine similarity to the reference centroid, as the run computes it."""
    import numpy as np

    from equal.corpus import read_documents, read_reference
    from equal.run.builders import build_embedder

    embedder = build_embedder(config.embedding)
    docs = list(read_documents(config.corpus.path, id_field="id"))
    centroid = embedder.encode([p.as_text() for p in read_reference(config.reference.path)]).mean(0)
    sims = embedder.encode([d.text for d in docs]) @ (centroid / np.linalg.norm(centroid))
    return {d.id: float(s) for d, s in zip(docs, sims)}


def test_similarity_warmup_and_order_follow_similarity_but_the_random_baseline_stays_random(replay_config, tmp_path):
    config = replay_config(**{"output.dir": str(tmp_path / "eq")})
    sim = _reference_similarity(config)
    ranks = sorted(sim, key=lambda i: -sim[i])
    result = run(config)
    warm_pulls = [p for p in result.pulls if p.round == -1]
    warm = [d for p in warm_pulls for d in p.document_ids]
    half = len(warm) // 2
    assert sorted(warm[:half]) == sorted(ranks[:half])  # warmup.selection: mixed (default)
    assert not set(warm[half:]) & set(ranks[:len(warm)])  # the other half: random, here none of the top
    # the offset comes from the random half alone: its pulls average a reward of 0, the similar half's more
    random_half = [p.reward for p in warm_pulls if set(p.document_ids) <= set(warm[half:])]
    similar_half = [p.reward for p in warm_pulls if set(p.document_ids) <= set(warm[:half])]
    assert abs(sum(random_half) / len(random_half)) < 1e-9
    assert sum(similar_half) / len(similar_half) > 0
    for pull in (p for p in result.pulls if p.round >= 0):  # bandit.document_order: reference (default)
        assert [sim[d] for d in pull.document_ids] == sorted((sim[d] for d in pull.document_ids), reverse=True)

    top = run(replay_config(**{"output.dir": str(tmp_path / "top"), "warmup.selection": "reference"}))
    assert sorted(d for p in top.pulls if p.round == -1 for d in p.document_ids) == sorted(ranks[:len(warm)])
    paper = run(replay_config(**{"output.dir": str(tmp_path / "paper"), "warmup.selection": "random"}))
    assert sorted(d for p in paper.pulls if p.round == -1 for d in p.document_ids) != sorted(ranks[:len(warm)])

    baseline = run(replay_config(**{"output.dir": str(tmp_path / "rnd"), "bandit.selection": "random"}))
    picked = [d for p in baseline.pulls for d in p.document_ids]
    assert sorted(picked[:len(warm)]) != sorted(ranks[:len(warm)])  # neither warm-up nor draws follow similarity
    mean_rank = sum(ranks.index(d) for d in picked) / len(picked)
    assert mean_rank > 0.3 * len(ranks)  # top-similarity picks would average about 0.1 of the corpus


def test_the_task_shaped_prompt_shows_reward_examples_and_never_a_heldout_one(replay_config, reference_path,
                                                                               tmp_path):
    """prompt: task shows examples of the reward reference (the same for every request, chosen by the seed) and
    the task's description; the held-out part (an eval set the run decontaminates against) never reaches a prompt."""
    import json

    rows = [json.loads(line) for line in reference_path.read_text().splitlines() if line.strip()]
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps({"question": f"Held-out question number {i} about tuples?",
                                           "answer": f"Held-out answer {i} that no prompt may show."}) + "\n"
                               for i in range(20)))
    with FakeOpenAIServer() as server:
        run(replay_config(**{"extraction.extractor": "openai", "extraction.model": "fake",
                             "extraction.base_url": server.base_url, "extraction.prompt": "task",
                             "extraction.prompt_examples": 2, "extraction.task_description": "Python FAQ answers",
                             "decontamination.eval_sets": [str(heldout)]}))
    prompts = [b["messages"][-1]["content"] for b in server.bodies]
    assert len(prompts) == 40
    task_blocks = {p.split("<document>")[0] for p in prompts}
    assert len(task_blocks) == 1  # one prefix for every request (a server can cache it)
    block = task_blocks.pop()
    assert "Python FAQ answers" in block and block.count("<example>") == 2
    assert sum(r["question"] in block for r in rows) == 2
    assert not any("Held-out" in p for p in prompts)

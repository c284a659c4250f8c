"""One contract for every selection strategy of the registry (``bandit.selection``), on a small replay corpus."""

from __future__ import annotations

import json
import math
import typing

import pytest

from equal import run
from equal.config import BanditConfig
from equal.output.formats import read_dataset
from equal.report import load_run
from equal.run.schema import ClusterRecord, DocumentRecord, RoundRecord, RunStats, read_stats
from equal.run.strategies import STRATEGIES, build_strategy

N_DOCUMENTS, FRACTION = 200, 0.2


def test_the_registry_holds_every_selection_the_config_accepts(replay_config):
    assert set(STRATEGIES) == set(typing.get_args(BanditConfig.model_fields["selection"].annotation))
    for name in STRATEGIES:
        strategy = build_strategy(replay_config(**{"bandit.selection": name}))
        assert strategy.warmup in ("random", "reference", "mixed")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run per registered strategy (same corpus, budget and seed)."""
    from conftest import make_corpus, make_reference
    from equal.config import load_config

    root = tmp_path_factory.mktemp("strategies")
    corpus, reference = make_corpus(root / "corpus.jsonl"), make_reference(root / "reference.jsonl")
    results = {}
    for name in STRATEGIES:
        results[name] = run(load_config(None, {
            "corpus.path": str(corpus), "corpus.id_field": "id", "corpus.label_field": "source",
            "reference.path": str(reference), "embedding.model": "hashing-256", "extraction.extractor": "replay",
            "budget.fraction": FRACTION, "clustering.k": 10, "bandit.selection": name,
            "output.dir": str(root / name),
        }))
    return results


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_budget_is_respected_and_no_document_is_paid_twice(finished, name):
    result = finished[name]
    assert len(result.selected_documents) == result.summary.documents_extracted == math.ceil(FRACTION * N_DOCUMENTS)
    assert len(set(result.selected_documents)) == len(result.selected_documents)
    assert result.counters["documents_extracted"] == result.summary.documents_extracted
    assert sum(result.summary.extracted_by_label.values()) == result.summary.documents_extracted


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_pair_has_typed_complete_provenance_from_a_selected_document(finished, name):
    result = finished[name]
    selected = set(result.selected_documents)
    reward_of = {(p.round, d): round(p.reward, 6) for p in result.pulls for d in p.document_ids}
    assert result.pairs and len(result.pairs) == result.counters["pairs_written"]
    for pair in result.pairs:
        prov = pair.provenance
        assert prov is not None and pair.metadata == {}
        assert pair.document_id in selected
        assert prov.stage == ("warmup" if prov.round == -1 else "bandit")
        assert 0 <= prov.cluster < result.summary.clusters
        assert prov.pull_reward == reward_of[(prov.round, pair.document_id)]
        assert prov.labelled and prov.label in ("python", "other")
        assert prov.source_id == pair.document_id  # one passage per record here
    assert {p.provenance.stage for p in result.pairs} == {"warmup", "bandit"}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_the_run_directory_reads_back_through_the_schema(finished, name):
    result = finished[name]
    run_dir = result.run_dir
    assert read_dataset(run_dir) == result.pairs  # provenance included, field for field
    stats = read_stats(run_dir)
    assert stats == RunStats(result.counters, result.summary)
    view = load_run(run_dir)
    assert [d.document_id for d in view.documents] == result.selected_documents
    assert len(view.clusters) == result.summary.clusters
    warm = result.summary.warmup_documents
    assert sum(len(p.documents) for r in view.rounds for p in r.pulls) == result.summary.documents_extracted - warm
    assert len(view.rounds) == result.counters["rounds"]
    shape = result.summary.clusters_per_round * result.summary.docs_per_pull
    assert all(sum(len(p.documents) for p in r.pulls) <= shape for r in view.rounds)
    # each line and row on disk is exactly what its record writes
    for line, record in zip((run_dir / "rounds.jsonl").read_text().splitlines(), view.rounds):
        assert json.loads(line) == record.to_json() and RoundRecord.from_json(json.loads(line)) == record
    for row, record in zip(json.loads((run_dir / "clusters.json").read_text()), view.clusters):
        assert row == record.to_json() and ClusterRecord.from_json(row) == record
    for line, record in zip((run_dir / "documents.jsonl").read_text().splitlines(), view.documents):
        assert json.loads(line) == record.to_json() and DocumentRecord.from_json(json.loads(line)) == record


def test_random_documents_play_one_arm_and_the_cluster_strategies_the_clusters(finished):
    assert finished["random"].summary.clusters == 1 and finished["random"].summary.clusters_per_round == 1
    assert "clusters" not in finished["random"].counters
    for name in ("equal", "paper", "random-clusters"):
        assert finished[name].summary.clusters == finished[name].counters["clusters"] == 10
    assert finished["equal"].counters["warmup_priors"] > 0
    assert "warmup_priors" not in finished["paper"].counters


def _outputs(run_dir, names=("dataset.jsonl", "rounds.jsonl", "clusters.json", "documents.jsonl")):
    return {name: (run_dir / name).read_bytes() for name in names}


def test_paper_and_random_clusters_are_equal_with_the_settings_they_name(finished, replay_config, tmp_path):
    paper = run(replay_config(**{"output.dir": str(tmp_path / "paper"), "bandit.alpha": 0.001,
                                 "warmup.as_prior": False, "bandit.similarity_prior": False,
                                 "warmup.selection": "random", "bandit.document_order": "random"}))
    assert _outputs(paper.run_dir) == _outputs(finished["paper"].run_dir)
    clusters = run(replay_config(**{"output.dir": str(tmp_path / "rc"), "bandit.policy": "uniform",
                                    "warmup.as_prior": False, "bandit.similarity_prior": False,
                                    "warmup.selection": "random", "bandit.document_order": "random"}))
    assert _outputs(clusters.run_dir) == _outputs(finished["random-clusters"].run_dir)

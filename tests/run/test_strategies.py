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
    from equal.config import load_config
    from tests.helpers import make_corpus, make_reference

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


# -- the keys a strategy sets itself: declared, and refused (or warned about) when the config sets them otherwise --

# every key paper and random-clusters set themselves, with a value other than theirs (the default included, when
# it is not theirs: set explicitly, it asks for what the strategy turns off)
REFUSALS = [
    ("paper", "warmup.selection", "reference"),
    ("paper", "warmup.selection", "mixed"),
    ("paper", "bandit.document_order", "centroid"),
    ("paper", "bandit.alpha", "auto"),
    ("paper", "bandit.alpha", 0.01),
    ("paper", "warmup.as_prior", True),
    ("paper", "bandit.similarity_prior", True),
    ("random-clusters", "warmup.selection", "reference"),
    ("random-clusters", "bandit.document_order", "reference"),
    ("random-clusters", "bandit.alpha", "auto"),
    ("random-clusters", "warmup.as_prior", True),
    ("random-clusters", "bandit.similarity_prior", True),
    ("random-clusters", "bandit.policy", "ucb"),
]


def test_every_key_a_strategy_refuses_has_a_refusal_case():
    from equal.config import SELECTION_SETTINGS

    declared = {(name, key) for name, s in SELECTION_SETTINGS.items() if s.conflict == "refuse" for key in s.values}
    assert declared == {(name, key) for name, key, _ in REFUSALS}


@pytest.mark.parametrize(("selection", "key", "value"), REFUSALS)
def test_a_strategy_refuses_a_key_it_sets_itself(replay_config, selection, key, value):
    from equal.config import SELECTION_SETTINGS
    from equal.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        replay_config(**{"bandit.selection": selection, key: value})
    message = str(refused.value)
    assert f"override {key}={value!r}: {key}: bandit.selection {selection} sets it to" in message
    assert "or set bandit.selection: equal with" in message  # the config that runs what was asked
    # the strategy's own value, set or left out, is not refused
    replay_config(**{"bandit.selection": selection, key: SELECTION_SETTINGS[selection].values[key]})
    replay_config(**{"bandit.selection": selection})


def test_the_advice_of_a_refusal_is_a_config_that_runs_what_was_asked(replay_config):
    from equal.config import SELECTION_SETTINGS
    from equal.errors import ConfigError

    message = str(pytest.raises(ConfigError, replay_config, **{"bandit.selection": "random-clusters",
                                                                "bandit.alpha": "auto"}).value)
    advice = message.split("bandit.selection: equal with ")[1].strip()
    settings = dict(item.split(": ") for item in advice.split(", "))
    assert set(settings) == set(SELECTION_SETTINGS["random-clusters"].values) - {"bandit.alpha"}
    config = replay_config(**{"bandit.alpha": "auto", **{k: {"false": False}.get(v, v) for k, v in settings.items()}})
    strategy = build_strategy(config)  # random clusters, as the paper has them, with alpha auto
    assert (strategy.warmup, strategy.document_order, strategy.similarity_prior, strategy.warmup_prior,
            strategy.policy_name, strategy.alpha_setting) == ("random", "random", False, False, "uniform", "auto")


def test_every_key_a_strategy_refuses_is_named_in_one_message(replay_config):
    from equal.errors import ConfigError

    message = str(pytest.raises(ConfigError, replay_config, **{
        "bandit.selection": "paper", "warmup.as_prior": True, "bandit.similarity_prior": True}).value)
    assert message.count("bandit.selection paper sets it to false itself, so true would not be used") == 2
    assert "or set bandit.selection: equal with warmup.selection: random, bandit.document_order: random, " \
           "bandit.alpha: 0.001" in message


def test_validate_names_the_key_and_the_strategy_in_the_file(tmp_path):
    from typer.testing import CliRunner

    from equal.cli.main import app

    path = tmp_path / "c.yaml"
    path.write_text("bandit: {selection: paper}\nwarmup: {as_prior: true}\n")
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert f"invalid configuration in {path}" in result.output
    assert "warmup.as_prior: bandit.selection paper sets it to false itself, so true would not be used" \
        in result.output


def test_a_flag_is_blamed_for_the_selection_it_sets(tmp_path, replay_config):
    from equal.config import load_config
    from equal.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text("warmup: {selection: reference}\n")
    message = str(pytest.raises(ConfigError, load_config, path, {"bandit.selection": "paper"},
                                flags={"bandit.selection": "--selection"}).value)
    assert "warmup.selection: bandit.selection paper sets it to random itself" in message


def test_random_documents_warn_once_about_the_keys_they_do_not_use(replay_config, caplog):
    with caplog.at_level("WARNING"):
        replay_config(**{"bandit.selection": "random", "warmup.selection": "reference", "alignment.enabled": True,
                         "bandit.document_order": "random"})  # set to random's own value: not warned about
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["bandit.selection random takes warmup.selection: random, alignment.enabled: false itself; "
                        "the config's warmup.selection: reference, alignment.enabled: true are not used"]


def test_the_demo_config_runs_its_random_baseline_with_a_warning(caplog):
    """scripts/demo.sh runs examples/demo.yaml, a whole EQUAL config, with --selection random."""
    from equal.config import load_config
    from tests.helpers import ROOT

    demo = ROOT / "examples" / "demo.yaml"
    with caplog.at_level("WARNING"):
        load_config(demo, {"bandit.selection": "random"})
    assert [r.getMessage().split(" itself;")[0] for r in caplog.records] == [
        "bandit.selection random takes warmup.selection: random, bandit.document_order: random, "
        "bandit.similarity_prior: false, warmup.as_prior: false"]


@pytest.mark.parametrize("name", ["paper", "random-clusters", "random"])
def test_the_saved_config_says_what_ran_and_loads_again_quietly(replay_config, tmp_path, caplog, name):
    from equal.config import SELECTION_SETTINGS, dump_config, load_config

    config = replay_config(**{"bandit.selection": name})
    dump_config(config, tmp_path / "config.yaml")
    with caplog.at_level("WARNING"):
        saved = load_config(tmp_path / "config.yaml")
    assert caplog.records == []
    for key, value in SELECTION_SETTINGS[name].values.items():
        section, field = key.split(".")
        assert getattr(getattr(saved, section), field) == value
    assert build_strategy(saved) == build_strategy(config)


def test_every_bench_strategy_loads_without_a_refusal_or_a_warning(replay_config, caplog):
    from equal.bench.strategies import STRATEGIES as BENCH
    from equal.bench.strategies import PipelineStrategy

    pipelines = {name: s for name, s in BENCH.items() if isinstance(s, PipelineStrategy)}
    assert {"EQUAL, paper settings", "random documents", "random clusters"} <= set(pipelines)
    with caplog.at_level("WARNING"):
        for strategy in pipelines.values():
            replay_config(**strategy.overrides)
    assert caplog.records == []


# two values of each key a strategy could set itself
_VALUES = {"warmup.selection": ("reference", "mixed"), "bandit.document_order": ("centroid", "reference"),
           "bandit.similarity_prior": (True, False), "warmup.as_prior": (True, False), "bandit.alpha": ("auto", 0.5),
           "bandit.policy": ("ucb", "uniform"), "alignment.enabled": (True, False)}


def _set(config, key, value):
    """``config`` with ``key`` set, unchecked (a value the strategy would refuse included)."""
    section, name = key.split(".")
    return config.model_copy(update={section: getattr(config, section).model_copy(update={name: value})})


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_a_strategy_ignores_exactly_the_keys_it_declares(replay_config, name):
    from equal.config import SELECTION_SETTINGS

    settings = SELECTION_SETTINGS.get(name)
    declared = set(settings.values) if settings else set()
    config = replay_config(**{"bandit.selection": name})
    for key, (a, b) in _VALUES.items():
        same = build_strategy(_set(config, key, a)) == build_strategy(_set(config, key, b))
        assert same == (key in declared), (name, key)

import json

import pytest

from equal.config import load_config
from equal.errors import ConfigError


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("budget:\n  fraction: 0.2\nseed: 3\n")
    cfg = load_config(path, {"seed": 9, "corpus.text_field": "body"})
    assert cfg.budget.fraction == 0.2 and cfg.seed == 9 and cfg.corpus.text_field == "body"
    assert cfg.extraction.extractor == "local" and cfg.reward.offset == "auto"


def test_misspelled_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("bandit:\n  alpah: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "bandit.alpah" in str(info.value) and "unknown key" in str(info.value)


def test_unknown_section_and_bad_value_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("budgett: {}\nbudget:\n  fraction: 2\n")
    message = str(pytest.raises(ConfigError, load_config, path).value)
    assert "budgett" in message and "budget.fraction" in message


def test_neighbour_threshold_replaces_quantile():
    cfg = load_config(None, {"clustering.neighbour_threshold": 0.2})
    assert cfg.clustering.neighbour_quantile is None
    with pytest.raises(ConfigError):
        load_config(None, {"clustering.neighbour_threshold": 0.2, "clustering.neighbour_quantile": 0.1})


def test_not_a_mapping_and_bad_yaml(tmp_path):
    (tmp_path / "a.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "b.yaml")


def test_inputs_are_required():
    with pytest.raises(ConfigError, match="corpus.path"):
        load_config(None).require_inputs()


def test_configuration_reference_is_generated_from_the_models():
    from equal.config_reference import reference_markdown
    from tests.helpers import ROOT

    path = ROOT / "docs" / "configuration.md"
    assert path.read_text() == reference_markdown(), "run: equal config-reference > docs/configuration.md"


@pytest.mark.parametrize(("section", "key", "owner"), [
    ("extractor: local\n  n_ctx: 4096\n  base_url: http://x/v1", "base_url", "openai"),
    ("extractor: openai\n  model: m\n  n_ctx: 4096", "n_ctx", "local"),
    ("extractor: replay\n  max_tokens: 100", "max_tokens", "local or openai"),
    ("n_threads: 2\n  replay_field: pairs", "replay_field", "replay"),  # no extractor: local
])
def test_a_key_of_another_extractor_is_named_with_its_extractor(tmp_path, section, key, owner):
    path = tmp_path / "c.yaml"
    path.write_text(f"extraction:\n  {section}\n")
    message = str(pytest.raises(ConfigError, load_config, path).value)
    assert f"extraction.{key}: a key of extractor {owner}" in message
    assert message.count("\n") == 1  # that key alone: the others belong where they are


def test_each_extractor_has_its_own_keys_and_shares_the_common_ones():
    local = load_config(None, {"extraction.n_ctx": 4096, "extraction.cache_dir": "/c", "extraction.max_tokens": 9})
    assert (local.extraction.extractor, local.extraction.n_ctx, local.extraction.max_tokens) == ("local", 4096, 9)
    openai = load_config(None, {"extraction.extractor": "openai", "extraction.model": "m", "extraction.concurrency": 3})
    assert openai.extraction.concurrency == 3 and openai.extraction.base_url.endswith("/v1")
    replay = load_config(None, {"extraction.extractor": "replay", "extraction.replay_field": "pairs"})
    assert replay.extraction.replay_field == "pairs" and replay.extraction.cache_dir is None
    assert not hasattr(replay.extraction, "base_url") and not hasattr(local.extraction, "replay_field")


def test_openai_needs_a_model_and_a_bad_extractor_is_named():
    message = str(pytest.raises(ConfigError, load_config, None, {"extraction.extractor": "openai"}).value)
    assert "extraction.model: required for extractor openai" in message
    message = str(pytest.raises(ConfigError, load_config, None, {"extraction.extractor": "vllm"}).value)
    assert "extraction.extractor: must be one of local, openai, replay, not 'vllm'" in message


def test_a_flag_that_switches_the_extractor_leaves_the_files_backend_keys_out(tmp_path, caplog):
    path = tmp_path / "c.yaml"
    path.write_text("extraction:\n  extractor: local\n  model: /models/x.gguf\n  n_ctx: 4096\n"
                    "  max_tokens: 100\n  cache_dir: /shared\n")
    cfg = load_config(path, {"extraction.extractor": "openai", "extraction.model": "m", "extraction.base_url": "u"})
    assert cfg.extraction.extractor == "openai" and cfg.extraction.model == "m" and cfg.extraction.base_url == "u"
    assert cfg.extraction.max_tokens == 100 and str(cfg.extraction.cache_dir) == "/shared"  # shared keys kept
    assert "extraction.model, extraction.n_ctx are not used" in caplog.text
    # the file's GGUF path is never taken for a served model's name
    message = str(pytest.raises(ConfigError, load_config, path, {"extraction.extractor": "openai"}).value)
    assert "extraction.model: required for extractor openai" in message
    replay = load_config(path, {"extraction.extractor": "replay"})
    assert replay.extraction.extractor == "replay" and str(replay.extraction.cache_dir) == "/shared"
    # a flag of the old backend is not dropped: it is an error
    with pytest.raises(ConfigError, match="extraction.n_ctx: a key of extractor local"):
        load_config(path, {"extraction.extractor": "replay", "extraction.n_ctx": 1024})


def test_a_config_saved_before_one_section_per_extractor_still_reads():
    from equal.config import RunConfig, upgrade_saved_config

    flat = {"extractor": "local", "replay_field": "qa_pairs", "model": None, "base_url": "http://127.0.0.1:8000/v1",
            "api_key_env": "OPENAI_API_KEY", "concurrency": 8, "max_retries": 5, "timeout_s": 120.0,
            "max_response_bytes": 1000000, "max_tokens": 768, "max_pairs": 5, "temperature": 0.0,
            "json_mode": "schema", "n_ctx": 2048, "n_threads": None, "cache_dir": None}
    saved = {**RunConfig().model_dump(mode="json"), "extraction": flat}
    with pytest.raises(ValueError):
        RunConfig.model_validate(saved)
    assert RunConfig.model_validate(upgrade_saved_config(saved)).extraction.n_ctx == 2048
    replay = {**saved, "extraction": {**flat, "extractor": "replay", "typo": 1}}
    with pytest.raises(ValueError, match="typo"):  # an unknown key is still one
        RunConfig.model_validate(upgrade_saved_config(replay))


def test_the_saved_config_holds_only_the_chosen_extractors_keys(tmp_path):
    from equal.config import dump_config

    cfg = load_config(None, {"extraction.extractor": "replay"})
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert "base_url" not in (tmp_path / "config.yaml").read_text()


# -- values that pass for numbers, counts out of range, and keys set twice -----------------------------------------


@pytest.mark.parametrize(("yaml_text", "key"), [
    ("bandit: {docs_per_pull: 0}", "bandit.docs_per_pull"),  # was a ZeroDivisionError mid-run
    ("bandit: {clusters_per_round: 0}", "bandit.clusters_per_round"),
    ("budget: {fraction: yes}", "budget.fraction"),  # YAML's yes is true, which became 1.0: the whole corpus
    ("budget: {fraction: .nan}", "budget.fraction"),
    ("seed: true", "seed"),
    ("budget: {llm_calls: true}", "budget.llm_calls"),
    ("bandit: {rounds_in_flight: true}", "bandit.rounds_in_flight"),
    ("bandit: {rounds_in_flight: 5}", "bandit.rounds_in_flight"),  # at most 4 rounds out at once
    ("clustering: {k: 0}", "clustering.k"),
    ("clustering: {k: true}", "clustering.k"),
    ("clustering: {iterations: 2.5}", "clustering.iterations"),
    ("bandit: {alpha: -0.1}", "bandit.alpha"),
    ("bandit: {alpha: .inf}", "bandit.alpha"),
    ("reward: {offset: .nan}", "reward.offset"),
    ("warmup: {min_documents: true}", "warmup.min_documents"),
    ("bandit: {similarity_prior: 1}", "bandit.similarity_prior"),
    ("corpus: {limit: '100'}", "corpus.limit"),
    ("alignment: {negative_ranks: [200, 2]}", "alignment.negative_ranks"),
    ("alignment: {negative_ranks: [0, 200]}", "alignment.negative_ranks"),
    ("extraction: {extractor: openai, model: m, timeout_s: .inf}", "extraction.timeout_s"),
    ("extraction: {extractor: openai, model: m, concurrency: true}", "extraction.concurrency"),
])
def test_a_value_that_is_no_number_of_the_range_is_refused(tmp_path, yaml_text, key):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text + "\n")
    message = str(pytest.raises(ConfigError, load_config, path).value)
    lines = message.splitlines()[1:]
    assert len(lines) == 1 and lines[0].strip().startswith(f"{key}:"), message  # one line, naming the key


def test_valid_numbers_still_pass(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("budget: {fraction: 1, llm_calls: 100}\nseed: 0\nbandit: {docs_per_pull: 10, "
                    "clusters_per_round: auto, rounds_in_flight: 4, alpha: auto}\nclustering: {k: 1}\n"
                    "alignment: {negative_ranks: [2, 200]}\nreward: {offset: 0.12}\n")
    cfg = load_config(path)
    assert cfg.budget.fraction == 1.0 and cfg.bandit.docs_per_pull == 10 and cfg.clustering.k == 1
    assert cfg.alignment.negative_ranks == (2, 200) and cfg.bandit.rounds_in_flight == 4


@pytest.mark.parametrize("yaml_text", [
    "budget:\n  fraction: 0.5\nseed: 1\nbudget:\n  fraction: 0.01\n",
    "budget:\n  fraction: 0.5\n  fraction: 0.01\n",
    "budget: {fraction: 0.5, fraction: 0.01}\n",
])
def test_a_key_set_twice_is_an_error_naming_it(tmp_path, yaml_text):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    message = str(pytest.raises(ConfigError, load_config, path).value)
    key = "budget" if yaml_text.count("budget") == 2 else "fraction"
    assert f"{key!r} is set twice" in message and str(path) in message and "line" in message


def test_validate_refuses_zero_clusters(tmp_path):
    from typer.testing import CliRunner

    from equal.cli.main import app

    path = tmp_path / "c.yaml"
    path.write_text("clustering: {k: 0}\n")
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "clustering.k" in result.output


def test_a_flag_with_an_out_of_range_value_is_blamed_on_the_flag():
    with pytest.raises(ConfigError, match=r"--rounds-in-flight 5: bandit.rounds_in_flight"):
        load_config(None, {"bandit.rounds_in_flight": 5}, flags={"bandit.rounds_in_flight": "--rounds-in-flight"})


#: every key of the Ray executor, with a value it takes
RAY_KEYS = [("address", "auto"), ("embed_workers", 3), ("llm_workers", 3), ("cpus_per_worker", 2.0),
            ("embed_batch_size", 64), ("gpus_per_worker", 1.0), ("embed_pairs", False)]


@pytest.mark.parametrize(("key", "value"), RAY_KEYS)
def test_a_ray_key_under_the_local_executor_is_an_error_naming_it(tmp_path, key, value):
    path = tmp_path / "c.yaml"
    path.write_text(f"executor:\n  kind: local\n  {key}: {json.dumps(value)}\n")
    message = str(pytest.raises(ConfigError, load_config, path).value)
    assert f"executor.{key} needs executor.kind: ray" in message
    with pytest.raises(ConfigError, match=f"executor.{key} needs executor.kind: ray"):  # kind local by default
        load_config(None, {f"executor.{key}": value})
    assert load_config(None, {"executor.kind": "ray", f"executor.{key}": value}).executor.kind == "ray"


def test_the_executor_is_one_section_per_kind():
    from equal.config import LocalExecutorConfig, RayExecutorConfig

    assert load_config(None).executor == LocalExecutorConfig()
    assert set(RayExecutorConfig.model_fields) == {"kind", *(key for key, _ in RAY_KEYS)}
    ray = load_config(None, {"executor.kind": "ray", "executor.address": "auto", "executor.llm_workers": 4})
    assert isinstance(ray.executor, RayExecutorConfig)
    assert (ray.executor.address, ray.executor.llm_workers) == ("auto", 4)
    assert ray.executor.corpus_chunk_size > LocalExecutorConfig().corpus_chunk_size  # Ray jobs start slowly
    with pytest.raises(ConfigError, match="executor.kind: must be one of local, ray, not 'gpu'"):
        load_config(None, {"executor.kind": "gpu"})
    with pytest.raises(ConfigError, match="executor.typo: unknown key"):
        load_config(None, {"executor.kind": "ray", "executor.typo": 1})


def test_a_config_saved_with_ray_keys_beside_the_local_executor_still_reads(tmp_path):
    from equal.config import LocalExecutorConfig, RayExecutorConfig, RunConfig, dump_config, upgrade_saved_config

    flat = {"kind": "local", **{k: v for k, v in RayExecutorConfig().model_dump(mode="json").items() if k != "kind"}}
    saved = {**RunConfig().model_dump(mode="json"), "executor": flat}
    with pytest.raises(ValueError):
        RunConfig.model_validate(saved)
    assert RunConfig.model_validate(upgrade_saved_config(saved)).executor == LocalExecutorConfig()
    on_ray = {**saved, "executor": {**flat, "kind": "ray", "llm_workers": 8}}
    assert RunConfig.model_validate(upgrade_saved_config(on_ray)).executor.llm_workers == 8  # type: ignore[union-attr]
    typo = {**saved, "executor": {**flat, "typo": 1}}
    with pytest.raises(ValueError, match="typo"):  # an unknown key is still one
        RunConfig.model_validate(upgrade_saved_config(typo))
    cfg = load_config(None, {"executor.kind": "ray", "executor.embed_pairs": True})
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg

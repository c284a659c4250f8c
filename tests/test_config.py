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
    from pathlib import Path

    from equal.config_reference import reference_markdown

    path = Path(__file__).parent.parent / "docs" / "configuration.md"
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

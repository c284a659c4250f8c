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

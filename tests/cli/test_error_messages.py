"""What a new user runs into first: errors that blame the right place, no silent no-op."""

from __future__ import annotations

from typer.testing import CliRunner

from equal.cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "300"}


def _config(tmp_path, corpus_path, reference_path, **extra: str):
    text = (f"corpus:\n  path: {corpus_path}\n  id_field: id\n  label_field: source\n"
            f"reference:\n  path: {reference_path}\nembedding:\n  model: hashing-128\nclustering:\n  k: 8\n"
            "extraction:\n  extractor: replay\n")
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_a_bad_flag_is_blamed_on_the_flag_not_on_the_file(tmp_path, corpus_path, reference_path):
    config = _config(tmp_path, corpus_path, reference_path)
    for flags, shown in ((["--budget", "10"], "--budget 10.0: budget.fraction"),
                         (["--extractor", "lokal"], "--extractor lokal: extraction.extractor"),
                         (["--format", "csv"], "--format csv: output.format")):
        result = runner.invoke(app, ["run", str(config), *flags, "--out", str(tmp_path / "run")], env=WIDE)
        assert result.exit_code == 2, result.output
        assert shown in result.output and f"invalid configuration in {config}" not in result.output
    # a mistake in the file is still the file's
    bad = tmp_path / "bad.yaml"
    bad.write_text("budget:\n  fraction: 3\n")
    result = runner.invoke(app, ["run", str(bad), "--seed", "1"], env=WIDE)
    assert f"invalid configuration in {bad}" in result.output and "budget.fraction" in result.output
    assert "--seed" not in result.output


def test_validate_checks_that_the_input_files_exist(tmp_path, corpus_path, reference_path):
    good = _config(tmp_path, corpus_path, reference_path)
    assert runner.invoke(app, ["validate", str(good)]).exit_code == 0
    missing = _config(tmp_path, tmp_path / "nope.jsonl", reference_path)
    result = runner.invoke(app, ["validate", str(missing)], env=WIDE)
    assert result.exit_code == 2 and f"corpus.path (--corpus) {tmp_path / 'nope.jsonl'} does not exist" in result.output


def test_a_run_with_a_missing_corpus_creates_no_output_folder(tmp_path, reference_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--corpus", str(tmp_path / "nope.jsonl"), "--reference", str(reference_path),
                                 "--extractor", "replay", "--out", str(out)], env=WIDE)
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not out.exists()


def test_replay_of_a_field_no_record_has_stops_before_anything_runs(tmp_path, corpus_path, reference_path):
    config = _config(tmp_path, corpus_path, reference_path)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(config), "--replay-field", "pairs_v2", "--out", str(out)], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "'pairs_v2'" in result.output and "--replay-field" in result.output
    assert not (out / "dataset.jsonl").exists()


def test_compare_names_the_labels_when_the_relevant_one_is_unknown(tmp_path, corpus_path, reference_path):
    config = _config(tmp_path, corpus_path, reference_path)
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(config), "--out", str(out), "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["compare", str(out), "--relevant", "pyhton"], env=WIDE)
    assert result.exit_code == 2
    assert "'pyhton'" in result.output and "other, python" in result.output
    ok = runner.invoke(app, ["compare", str(out), "--relevant", "python"], env=WIDE)
    assert ok.exit_code == 0 and "share python (relevant)" in ok.output


def test_threads_flag_sets_the_local_models_threads_and_nothing_else(tmp_path, corpus_path, reference_path):
    from equal.cli.options import FLAGS, config_overrides
    from equal.config import load_config

    cfg = load_config(None, config_overrides(threads=1, extractor="local"), flags=FLAGS)
    assert cfg.extraction.n_threads == 1
    config = _config(tmp_path, corpus_path, reference_path)  # extractor replay: it has no threads
    result = runner.invoke(app, ["run", str(config), "--threads", "1", "--out", str(tmp_path / "run")], env=WIDE)
    assert result.exit_code == 2 and "--threads 1: extraction.n_threads" in result.output


def test_the_local_model_sleeps_while_it_waits_unless_told_otherwise(monkeypatch, tmp_path):
    import os

    import pytest

    from equal.errors import ConfigError
    from equal.llm.llamacpp import LlamaCppLLM

    for preset, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        if preset is None:
            monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        else:
            monkeypatch.setenv("OMP_WAIT_POLICY", preset)
        with pytest.raises(ConfigError, match="is not a file"):
            LlamaCppLLM(tmp_path / "missing.gguf").load()
        assert os.environ["OMP_WAIT_POLICY"] == expected


def test_every_commands_help_fits_80_columns_with_whole_option_names():
    import re

    from equal.cli.main import app as cli

    for command in ("run", "extract", "export", "bench", "inspect", "report", "compare", "validate"):
        result = runner.invoke(cli, [command, "--help"], env={"COLUMNS": "80", "TERM": "dumb"})
        assert result.exit_code == 0, (command, result.output)
        assert all(len(line) <= 80 for line in result.output.splitlines()), command
        assert not re.search(r"--[\w-]*…", result.output), (command, "an option name is cut")

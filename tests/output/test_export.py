"""Where `equal export` may write: LLaMA-Factory's dataset_info.json merged, never into a run directory or a cache,
never over a file without --overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from equal import run
from equal.cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # rich wraps long messages; keep each on one line


@pytest.fixture
def finished(replay_config, tmp_path):
    """A finished run at half the corpus, in tmp_path/run."""
    return run(replay_config(**{"budget.fraction": 0.5})).run_dir


# -- export merges LLaMA-Factory's dataset_info.json -----------------------------------------------------------


def test_export_keeps_the_other_datasets_of_dataset_info(finished, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    theirs = {"my_chat": {"file_name": "chat.json", "formatting": "sharegpt"}, "math": {"file_name": "math.json"}}
    (data / "dataset_info.json").write_text(json.dumps(theirs, indent=2))
    for fmt, name in (("alpaca", "mine.jsonl"), ("sharegpt", "shared.jsonl")):
        result = runner.invoke(app, ["export", str(finished), "--out", str(data / name), "--format", fmt])
        assert result.exit_code == 0, result.output
    info = json.loads((data / "dataset_info.json").read_text())
    assert info["my_chat"] == theirs["my_chat"] and info["math"] == theirs["math"]
    assert info["mine"]["file_name"] == "mine.jsonl" and info["shared"]["formatting"] == "sharegpt"
    again = runner.invoke(app, ["export", str(finished), "--out", str(data / "mine.jsonl"), "--format", "alpaca",
                                "--overwrite"])
    assert again.exit_code == 0 and set(json.loads((data / "dataset_info.json").read_text())) == {
        "my_chat", "math", "mine", "shared"}


@pytest.mark.parametrize("content", ['{"my_chat": {"file_name": "chat.json"},', "[1, 2]"])
def test_export_refuses_a_dataset_info_that_is_no_json_object(finished, tmp_path, content):
    info = tmp_path / "dataset_info.json"
    info.write_text(content)
    out = tmp_path / "mine.jsonl"
    result = runner.invoke(app, ["export", str(finished), "--out", str(out), "--format", "alpaca"], env=WIDE)
    assert result.exit_code == 2, result.output
    assert str(info) in result.output and ("not valid JSON" in result.output or "not a JSON object" in result.output)
    assert info.read_text() == content and not out.exists()  # checked before anything is written


def test_export_refuses_to_repoint_a_dataset_of_the_same_name(finished, tmp_path):
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"mine": {"file_name": "precious.json"}}))
    result = runner.invoke(app, ["export", str(finished), "--out", str(tmp_path / "mine.jsonl"), "--format",
                                 "alpaca"], env=WIDE)
    assert result.exit_code == 2 and "another file" in result.output
    assert json.loads(info.read_text()) == {"mine": {"file_name": "precious.json"}}


# -- export never writes into a run directory or a cache, nor over a file without --overwrite ------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("target", "flags"), [
    ("RUN/dataset.jsonl", ["--min-reward", "0.2"]),
    ("RUN/stats.json", []),
    ("RUN/config.yaml", []),
    ("RUN/dataset.jsonl", ["--format", "parquet"]),
    ("RUN/cache/responses.sqlite", []),
    ("RUN/cache/new-name.jsonl", []),
    ("RUN/exports/new.jsonl", []),
    ("RUN", []),
    ("RUN", ["--format", "hf"]),
    ("RUN/hf", ["--format", "hf"]),
    ("OTHER/dataset.jsonl", []),
    ("OTHER/mine.jsonl", ["--format", "alpaca"]),
    ("CACHE/anything.jsonl", []),
    ("LINK", []),
    ("LINKDIR/mine.jsonl", []),
])
def test_export_refuses_a_target_inside_a_run_directory_or_a_cache(finished, replay_config, tmp_path, target,
                                                                   flags):
    other = run(replay_config(**{"output.dir": str(tmp_path / "other"),
                                 "extraction.cache_dir": str(tmp_path / "shared-cache")})).run_dir
    (tmp_path / "link.jsonl").symlink_to(finished / "dataset.jsonl")
    (tmp_path / "linkdir").symlink_to(finished, target_is_directory=True)
    out = target.replace("RUN", str(finished)).replace("OTHER", str(other)).replace(
        "CACHE", str(tmp_path / "shared-cache")).replace("LINKDIR", str(tmp_path / "linkdir")).replace(
        "LINK", str(tmp_path / "link.jsonl"))
    before = {folder: _snapshot(folder) for folder in (finished, other, tmp_path / "shared-cache")}
    result = runner.invoke(app, ["export", str(finished), "--out", out, *flags], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "--out" in result.output
    assert "run directory" in result.output or "cache" in result.output
    assert {folder: _snapshot(folder) for folder in before} == before  # not one byte of a run or cache changed
    assert (tmp_path / "link.jsonl").is_symlink()


def test_export_refuses_the_names_it_manages_itself(finished, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    theirs = {"my_chat": {"file_name": "chat.json", "formatting": "sharegpt"}}
    (data / "dataset_info.json").write_text(json.dumps(theirs))
    for fmt in ("alpaca", "sharegpt", "messages"):
        result = runner.invoke(app, ["export", str(finished), "--format", fmt, "--out",
                                     str(data / "dataset_info.json")], env=WIDE)
        assert result.exit_code == 2, result.output
        assert "dataset_info.json" in result.output and "another file name" in result.output
    assert json.loads((data / "dataset_info.json").read_text()) == theirs


def test_export_does_not_overwrite_an_existing_file_without_overwrite(finished, tmp_path):
    mine = tmp_path / "notes.jsonl"
    mine.write_text("my own notes\n")
    result = runner.invoke(app, ["export", str(finished), "--out", str(mine)], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "already exists" in result.output and "--overwrite" in result.output
    assert mine.read_text() == "my own notes\n"
    result = runner.invoke(app, ["export", str(finished), "--out", str(mine), "--overwrite"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pairs_out"] == len(mine.read_text().splitlines()) > 0


def test_export_to_a_folder_is_an_error_not_a_traceback(finished, tmp_path):
    folder = tmp_path / "exports"
    (folder / "keep").mkdir(parents=True)
    for flags in ([], ["--overwrite"], ["--format", "parquet", "--overwrite"]):
        result = runner.invoke(app, ["export", str(finished), "--out", str(folder), *flags], env=WIDE)
        assert result.exit_code == 2, result.output
        assert "is a directory" in result.output and "Traceback" not in result.output
    # --format hf writes a folder: an existing one only with --overwrite, and only a saved dataset
    result = runner.invoke(app, ["export", str(finished), "--out", str(folder), "--format", "hf", "--overwrite"],
                           env=WIDE)
    assert result.exit_code == 2 and "not a saved dataset" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["keep"]
    saved = tmp_path / "saved"
    assert runner.invoke(app, ["export", str(finished), "--out", str(saved), "--format", "hf"]).exit_code == 0
    again = runner.invoke(app, ["export", str(finished), "--out", str(saved), "--format", "hf"], env=WIDE)
    assert again.exit_code == 2 and "--overwrite" in again.output
    again = runner.invoke(app, ["export", str(finished), "--out", str(saved), "--format", "hf", "--overwrite",
                                "--max-pairs-per-document", "1"], env=WIDE)
    assert again.exit_code == 0, again.output
    import datasets

    assert len(datasets.load_from_disk(str(saved))) == json.loads(again.stdout)["pairs_out"]

"""The run directory and the files around it: what `equal run` and `equal extract` may overwrite, when a run counts
as finished, the seed's range, and damaged or unusual files read back by `report`, `inspect`, `compare` and `export`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from equal import ConfigError, InputError, run
from equal.cli.main import app
from equal.config import load_config
from equal.extraction.extractor import ReplayExtractor

runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # rich wraps long messages; keep each on one line


@pytest.fixture
def finished(replay_config, tmp_path):
    """A finished run at half the corpus, in tmp_path/run."""
    return run(replay_config(**{"budget.fraction": 0.5})).run_dir


def _config_file(tmp_path: Path, corpus: Path, reference: Path, **extra: object) -> Path:
    path = tmp_path / "config.yaml"
    lines = [f"corpus: {{path: {corpus}, id_field: id, label_field: source}}", f"reference: {{path: {reference}}}",
             "embedding: {model: hashing-128}", "clustering: {k: 8}", "extraction: {extractor: replay}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- --out never overwrites a user's files ---------------------------------------------------------------------


def test_run_refuses_a_folder_of_the_users_files(corpus_path, reference_path, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    config = _config_file(project, corpus_path, reference_path)  # the user's own hand-written config.yaml
    mine = config.read_text()
    (project / "stats.json").write_text('{"my": "numbers"}')
    result = runner.invoke(app, ["run", str(config), "--out", str(project), "-q"], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "output.dir" in result.output and str(project) in result.output
    assert "empty or new directory" in result.output
    assert config.read_text() == mine and (project / "stats.json").read_text() == '{"my": "numbers"}'
    assert sorted(p.name for p in project.iterdir()) == ["config.yaml", "stats.json"]  # not even a lock file


def test_run_refuses_an_out_that_is_a_file(corpus_path, reference_path, tmp_path):
    config = _config_file(tmp_path, corpus_path, reference_path)
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    result = runner.invoke(app, ["run", str(config), "--out", str(target), "-q", "--log-format", "json"])
    assert result.exit_code == 2, result.output
    event = json.loads(result.stdout.splitlines()[-1])  # through the CLI's one error path: a JSON event
    assert event["event"] == "error" and event["error"] == "ConfigError"
    assert "is a file" in event["message"] and "output.dir" in event["message"]
    assert target.read_text() == "mine"


def test_the_root_directory_is_no_run_directory():
    from equal.run.directory import claim_run_dir

    with pytest.raises(ConfigError, match="not an equal run directory"):
        claim_run_dir(Path("/"))
    assert not Path("/.equal-run").exists()


def test_a_run_directory_is_marked_and_can_be_run_again(replay_config, tmp_path):
    first = run(replay_config())
    assert (first.run_dir / ".equal-run").is_file()
    again = run(replay_config(**{"budget.fraction": 0.3}))  # a rerun in its own directory, another budget
    assert json.loads((again.run_dir / "stats.json").read_text())["summary"]["documents_extracted"] == 60


def test_a_run_directory_of_an_older_equal_is_recognised_or_marked_by_hand(replay_config, tmp_path):
    run_dir = run(replay_config()).run_dir
    (run_dir / ".equal-run").unlink()  # as an older equal left it: config.yaml, stats.json, rounds.jsonl, ...
    assert run(replay_config()).run_dir == run_dir and (run_dir / ".equal-run").is_file()
    # killed before its first round, by an older equal: a config and a cache, nothing that proves a run
    for name in ("stats.json", "rounds.jsonl", ".equal-run"):
        (run_dir / name).unlink()
    with pytest.raises(ConfigError, match="touch") as refused:
        run(replay_config())
    assert str(run_dir / ".equal-run") in str(refused.value)
    (run_dir / ".equal-run").touch()  # what the message says to do
    assert run(replay_config()).run_dir == run_dir


def test_extract_does_not_replace_a_users_file(corpus_path, tmp_path):
    notes = tmp_path / "notes.jsonl"
    mine = '{"id": "note-1", "text": "my own notes, not an extraction"}\n'
    notes.write_text(mine)
    result = runner.invoke(app, ["extract", "--corpus", str(corpus_path), "--id-field", "id", "--extractor", "replay",
                                 "--out", str(notes), "-q"], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "not an output of `equal extract`" in result.output and "new file name" in result.output
    assert notes.read_text() == mine
    folder = tmp_path / "folder"
    folder.mkdir()
    result = runner.invoke(app, ["extract", "--corpus", str(corpus_path), "--extractor", "replay", "--out",
                                 str(folder), "-q"], env=WIDE)
    assert result.exit_code == 2 and "is a directory" in result.output


# -- a killed or failed rerun reads as unfinished ---------------------------------------------------------------


class _KilledAfter(ReplayExtractor):
    """Replays stored pairs, then dies in the middle of the bandit, as a killed process would."""

    def __init__(self, batches: int) -> None:
        super().__init__("qa_pairs")
        self.batches = batches

    def extract(self, documents):
        self.batches -= 1
        if self.batches < 0:
            raise KeyboardInterrupt
        return super().extract(documents)


def test_a_killed_rerun_is_refused_by_every_reader_until_it_is_run_again(finished, replay_config, tmp_path):
    rerun = replay_config(**{"budget.fraction": 0.2})
    with pytest.raises(KeyboardInterrupt):
        run(rerun, extractor=_KilledAfter(batches=3))  # after the warm-up, in the bandit rounds
    assert "fraction: 0.2" in (finished / "config.yaml").read_text()  # the rerun had started rewriting
    for args in (["inspect", str(finished)], ["report", str(finished)], ["compare", str(finished)],
                 ["export", str(finished), "--out", str(tmp_path / "x.jsonl")]):
        result = runner.invoke(app, args, env=WIDE)
        assert result.exit_code == 2, (args, result.output)
        assert "unfinished run" in result.output and "run the same `equal run` command again" in result.output
    assert not (tmp_path / "x.jsonl").exists() and not (finished / "report.html").exists()
    run(rerun)  # finished again, at the new budget
    result = runner.invoke(app, ["inspect", str(finished)], env=WIDE)
    assert result.exit_code == 0 and "40 of 200" in result.output


def test_a_failed_rerun_reads_as_unfinished(finished, replay_config, tmp_path):
    (tmp_path / "reference.jsonl").write_text("")  # the rerun fails: no reference examples
    with pytest.raises(InputError):
        run(replay_config(**{"budget.fraction": 0.2}))
    result = runner.invoke(app, ["report", str(finished)], env=WIDE)
    assert result.exit_code == 2 and "unfinished run" in result.output


# -- the seed's range ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["-5", "2147483648", "99999999999999999999999"])
def test_a_seed_out_of_range_is_refused_before_any_work(corpus_path, reference_path, tmp_path, seed):
    config = _config_file(tmp_path, corpus_path, reference_path)
    result = runner.invoke(app, ["run", str(config), "--seed", seed, "--out", str(tmp_path / "run"), "-q"],
                           env=WIDE)
    assert result.exit_code == 2, result.output
    assert "seed" in result.output
    assert "less than or equal to 2147483647" in result.output or "greater than or equal to 0" in result.output
    assert not (tmp_path / "run").exists()


def test_the_seed_range_is_what_every_consumer_takes(replay_config):
    assert load_config(None, {"seed": 0}).seed == 0
    result = run(replay_config(seed=2**31 - 1))  # numpy, faiss's k-means and random all take it
    assert result.counters["pairs_written"] > 0


# -- damaged stats.json and dataset.jsonl -------------------------------------------------------------------------


def test_a_truncated_stats_json_is_named_with_its_line(finished, tmp_path):
    stats = finished / "stats.json"
    text = stats.read_text()[: len(stats.read_text()) // 2]
    stats.write_text(text)
    with pytest.raises(json.JSONDecodeError) as where:
        json.loads(text)
    line = where.value.lineno
    for args in (["inspect", str(finished)], ["report", str(finished)], ["compare", str(finished)]):
        result = runner.invoke(app, args, env=WIDE)
        assert result.exit_code == 2, (args, result.output)
        assert f"{stats}, line {line}" in result.output and "not valid JSON" in result.output
    # export reads the data set only
    result = runner.invoke(app, ["export", str(finished), "--out", str(tmp_path / "x.jsonl")], env=WIDE)
    assert result.exit_code == 0, result.output


def test_a_torn_last_line_of_the_dataset_is_skipped_with_a_warning(finished, tmp_path):
    dataset = finished / "dataset.jsonl"
    lines = dataset.read_text().splitlines(keepends=True)
    dataset.write_text("".join(lines[:-1]) + lines[-1][:25])  # a copy killed in the middle of the last line
    result = runner.invoke(app, ["export", str(finished), "--out", str(tmp_path / "x.jsonl"), "--near-duplicates",
                                 "1"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pairs_in"] == len(lines) - 1
    assert f"line {len(lines)} is cut short" in result.output
    for args in (["inspect", str(finished)], ["report", str(finished)]):
        assert runner.invoke(app, args, env=WIDE).exit_code == 0


def test_a_damaged_line_inside_the_dataset_is_an_error_naming_it(finished, tmp_path):
    dataset = finished / "dataset.jsonl"
    lines = dataset.read_text().splitlines(keepends=True)
    lines[3] = lines[3][:20] + "\n"
    dataset.write_text("".join(lines))
    for args in (["export", str(finished), "--out", str(tmp_path / "x.jsonl")], ["inspect", str(finished)],
                 ["report", str(finished)]):
        result = runner.invoke(app, args, env=WIDE)
        assert result.exit_code == 2, (args, result.output)
        assert f"{dataset}, line 4: not valid JSON" in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_a_rerun_in_another_format_leaves_one_data_set(replay_config, tmp_path):
    run(replay_config(**{"output.format": "parquet", "budget.fraction": 0.5}))
    again = run(replay_config(**{"output.format": "messages"}))
    assert not (again.run_dir / "dataset.parquet").exists()  # else readers took the first run's data set
    result = runner.invoke(app, ["export", str(again.run_dir), "--out", str(tmp_path / "x.jsonl"), "--near-duplicates",
                                 "1"])
    assert result.exit_code == 0 and json.loads(result.stdout)["pairs_in"] == len(again.pairs)

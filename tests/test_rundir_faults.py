"""The run directory and the files around it: what equal may overwrite, when a run counts as finished,
and damaged or unusual files read back by `report`, `inspect`, `compare` and `export`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_corpus
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


# -- labels that matplotlib would read as math ------------------------------------------------------------------


def test_report_draws_labels_with_dollars_and_underscores_as_text(replay_config, tmp_path, monkeypatch):
    from equal.report import charts

    corpus = make_corpus(tmp_path / "corpus.jsonl")
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    for row in rows:
        row["source"] = r"$\undefinedcmd$" if row["source"] == "python" else "_hidden"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = replay_config(**{"corpus.path": str(corpus), "output.dir": str(tmp_path / "cost $5$ run")})
    run_dir = run(base).run_dir
    legends: list[list[str]] = []
    draw = charts._svg

    def record(fig):
        legends.extend([t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes if ax.get_legend())
        return draw(fig)

    monkeypatch.setattr(charts, "_svg", record)
    result = runner.invoke(app, ["report", str(run_dir), "--baseline", str(run_dir)], env=WIDE)
    assert result.exit_code == 0, result.output
    shown = [label for legend in legends for label in legend]
    assert r"\$\undefinedcmd\$" in shown and " _hidden" in shown  # rendered as "$\undefinedcmd$" and "_hidden"
    assert r"cost \$5\$ run (equal)" in shown


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

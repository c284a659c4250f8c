import json

from typer.testing import CliRunner

from equal.cli.main import app

runner = CliRunner()


def test_run_help_explains_every_option():
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--corpus", "--reference", "--text-field", "--id-field", "--extractor", "--replay-field",
                 "--budget", "--seed", "--out", "--selection", "--format", "--cache-dir"):
        assert flag in result.output


def test_run_from_flags(corpus_path, reference_path, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("embedding:\n  model: hashing-128\nclustering:\n  k: 8\ncorpus:\n  label_field: source\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(config), "--corpus", str(corpus_path), "--reference",
                                 str(reference_path), "--id-field", "id", "--extractor", "replay",
                                 "--replay-field", "qa_pairs", "--budget", "0.1", "--seed", "3",
                                 "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["summary"]["documents_extracted"] == 20
    assert "seed: 3" in (out / "config.yaml").read_text()
    compare = runner.invoke(app, ["compare", str(out), "--relevant", "python"])
    assert compare.exit_code == 0 and "share python (relevant)" in compare.output


def test_misspelled_config_key_fails_with_its_name(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("extraction:\n  extracter: local\n")
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 2
    assert "extraction.extracter" in result.output


def test_validate_prints_resolved_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("seed: 5\n")
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 0 and "seed: 5" in result.output and "neighbour_quantile" in result.output


def test_extract_every_passage_then_replay_it(corpus_path, reference_path, tmp_path):
    from equal.testing import FakeOpenAIServer

    out = tmp_path / "all.jsonl"
    with FakeOpenAIServer() as server:
        args = ["extract", "--corpus", str(corpus_path), "--id-field", "id", "--label-field", "source",
                "--extractor", "openai", "--model", "fake", "--base-url", server.base_url, "--out", str(out), "-q"]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        assert server.total_requests == 200
        again = runner.invoke(app, args)  # resumes from the cache beside --out
        assert again.exit_code == 0 and server.total_requests == 200
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 200 and all(len(r["qa_pairs"]) == 1 and r["source"] for r in rows)
    config = tmp_path / "c.yaml"
    config.write_text("embedding:\n  model: hashing-128\nclustering:\n  k: 8\n")
    replay = runner.invoke(app, ["run", str(config), "--corpus", str(out), "--reference", str(reference_path),
                                 "--id-field", "id", "--extractor", "replay", "--out", str(tmp_path / "r"), "-q"])
    assert replay.exit_code == 0, replay.output
    assert json.loads((tmp_path / "r" / "stats.json").read_text())["counters"]["pairs_written"] == 10


def test_json_log_format_is_one_event_per_line(corpus_path, reference_path, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--corpus", str(corpus_path), "--reference", str(reference_path),
                                 "--id-field", "id", "--extractor", "replay", "--budget", "0.2", "--out", str(out),
                                 "--log-format", "json"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]  # every line parses
    kinds = {e["event"] for e in events}
    assert {"stage_start", "stage_end", "progress", "note", "result"} <= kinds
    stages = [e["stage"] for e in events if e["event"] == "stage_start"]
    assert stages[0] == "reading corpus" and "bandit rounds (documents)" in stages
    notes = [e["note"] for e in events if e["event"] == "note"]
    assert notes and "calls" in notes[-1] and "tokens" in notes[-1] and "best clusters" in notes[-1]
    assert events[-1]["event"] == "result" and events[-1]["summary"]["documents_extracted"] == 40


def test_json_log_format_reports_errors_as_events(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out is runs/equal, relative to here
    result = runner.invoke(app, ["run", "--corpus", str(tmp_path / "none.jsonl"), "--reference",
                                 str(tmp_path / "none.jsonl"), "--log-format", "json"])
    assert result.exit_code == 2
    event = json.loads(result.stdout.splitlines()[-1])
    assert event["event"] == "error" and "does not exist" in event["message"]
    assert not (tmp_path / "runs").exists()  # a run that cannot start leaves nothing behind


def test_extract_resumes_from_a_partial_output_without_its_cache(corpus_path, tmp_path):
    """A partial output carried to another machine (no response cache) is finished, not redone."""
    from equal.testing import FakeOpenAIServer

    corpus = [json.loads(line) for line in corpus_path.read_text().splitlines()]
    out = tmp_path / "moved" / "all.jsonl"
    with FakeOpenAIServer() as server:
        args = ["extract", "--corpus", str(corpus_path), "--id-field", "id", "--label-field", "source",
                "--extractor", "openai", "--model", "fake", "--base-url", server.base_url, "-q"]
        assert runner.invoke(app, [*args, "--out", str(tmp_path / "first" / "all.jsonl")]).exit_code == 0
        lines = (tmp_path / "first" / "all.jsonl").read_text().splitlines()
        out.parent.mkdir()
        # 120 finished lines and one cut in half by a kill, on a machine without the first one's cache
        out.with_name("all.jsonl.partial").write_text("\n".join(lines[:120]) + "\n" + lines[120][:40])
        before = server.total_requests
        result = runner.invoke(app, [*args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert server.total_requests - before == 80  # the cut line is redone, the 120 are not
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in corpus]  # corpus order, each passage once
    assert not out.with_name("all.jsonl.partial").exists()


def test_extract_on_a_finished_output_extracts_only_what_the_corpus_gained(corpus_path, tmp_path):
    """A finished output on a machine without its response cache is kept, not paid for again."""
    from equal.testing import FakeOpenAIServer

    corpus = tmp_path / "corpus.jsonl"
    lines = corpus_path.read_text().splitlines()
    corpus.write_text("\n".join(lines[:150]) + "\n")
    with FakeOpenAIServer() as server:
        args = ["extract", "--corpus", str(corpus), "--id-field", "id", "--label-field", "source",
                "--extractor", "openai", "--model", "fake", "--base-url", server.base_url, "-q"]
        assert runner.invoke(app, [*args, "--out", str(tmp_path / "first" / "all.jsonl")]).exit_code == 0
        out = tmp_path / "moved" / "all.jsonl"
        out.parent.mkdir()
        out.write_text((tmp_path / "first" / "all.jsonl").read_text())
        before = server.total_requests
        assert runner.invoke(app, [*args, "--out", str(out)]).exit_code == 0
        assert server.total_requests == before and not out.with_name("all.jsonl.partial").exists()
        corpus.write_text("\n".join(lines) + "\n")  # the corpus gains 50 passages
        assert runner.invoke(app, [*args, "--out", str(out)]).exit_code == 0
        assert server.total_requests - before == 50
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [json.loads(line)["id"] for line in lines]


def test_every_command_goes_through_the_one_error_handler():
    callbacks = {command.name: command.callback for command in app.registered_commands}
    assert len(callbacks) >= 12
    assert all(getattr(callback, "__equal_reported__", False) for callback in callbacks.values()), callbacks


def test_json_log_format_reports_a_config_error_of_any_kind_as_an_event(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("extraction:\n  extractor: local\n  base_url: http://127.0.0.1:1/v1\n")
    for command in ("run", "extract"):
        result = runner.invoke(app, [command, str(config), "--log-format", "json"])
        assert result.exit_code == 2, result.output
        event = json.loads(result.stdout.splitlines()[-1])
        assert event["event"] == "error" and event["error"] == "ConfigError"
        assert "extraction.base_url: a key of extractor openai" in event["message"]
    # an unknown --log-format cannot be answered in that format: it is reported the rich way
    result = runner.invoke(app, ["run", str(config), "--log-format", "xml"])
    assert result.exit_code == 2 and "--log-format must be rich or json" in result.output


def test_a_command_without_log_format_reports_its_errors_too(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "error:" in result.output
    result = runner.invoke(app, ["bench", str(tmp_path), "--out", str(tmp_path / "out")], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "manifest.json is missing" in result.output


def test_flags_become_config_overrides_through_one_table():
    from pathlib import Path

    from equal.cli.options import CONFIG_KEYS, config_overrides
    from equal.config import load_config

    assert config_overrides(corpus=Path("/data/c.jsonl"), seed=3, model=None) == {"corpus.path": "/data/c.jsonl",
                                                                                  "seed": 3}
    every = {name: "/x" if key.endswith(("path", "dir")) else None for name, key in CONFIG_KEYS.items()}
    load_config(None, {key: value for key, value in config_overrides(**every).items()})  # every key exists
    help_text = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "300"}).output
    for key in CONFIG_KEYS.values():
        assert f"Config key: {key}" in help_text


def test_extractor_flag_switches_the_files_backend_cleanly(corpus_path, reference_path, tmp_path):
    """--extractor replay on a file written for the local model: its local keys are left out, with a warning."""
    config = tmp_path / "c.yaml"
    config.write_text("embedding:\n  model: hashing-128\nclustering:\n  k: 8\nextraction:\n  extractor: local\n"
                      "  model: /nowhere/model.gguf\n  n_ctx: 4096\n  max_tokens: 256\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(config), "--corpus", str(corpus_path), "--reference", str(reference_path),
                                 "--id-field", "id", "--extractor", "replay", "--budget", "0.1", "--out", str(out),
                                 "--log-format", "json"])
    assert result.exit_code == 0, result.output
    warnings = [json.loads(line)["message"] for line in result.stdout.splitlines()
                if json.loads(line).get("event") == "log" and json.loads(line).get("level") == "warning"]
    assert any("extraction.model, extraction.n_ctx, extraction.max_tokens are not used" in w for w in warnings)
    saved = (out / "config.yaml").read_text()
    assert "extractor: replay" in saved and "n_ctx" not in saved and "model.gguf" not in saved

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

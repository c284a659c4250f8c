"""`equal report`, `equal inspect` and `equal export` on a finished run."""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from equal import run
from equal.cli.main import app
from equal.testing.browser import chromium_available, open_page
from tests.helpers import make_corpus

runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # rich wraps long messages; keep each on one line
# Document and pair text that would run script in the report if it were not escaped.
HOSTILE = ('<script>console.error("xss-script")</script><img src=x onerror="console.error(\'xss-img\')"> '
           "python [bold]markup[/bold] [/unclosed] list function loop class module import")


def _tags(html: str) -> list[tuple[str, list[str]]]:
    """Every element a browser would build from ``html``, with its attribute names."""
    found: list[tuple[str, list[str]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, [name for name, _ in attrs]))

    Collect().feed(html)
    return found


@pytest.fixture
def finished_runs(tmp_path, replay_config):
    corpus = make_corpus(tmp_path / "corpus.jsonl")
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    for row in rows:  # every pair carries the hostile text, so whatever the report shows holds it
        row["qa_pairs"][0]["answer"] += " " + HOSTILE
        row["text"] += " " + HOSTILE
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = {"corpus.path": str(corpus), "budget.fraction": 0.5, "clustering.k": 6}
    equal_run = run(replay_config(**overrides, **{"output.dir": str(tmp_path / "equal")}))
    random_run = run(replay_config(**overrides, **{"output.dir": str(tmp_path / "random"),
                                                   "bandit.selection": "random"}))
    return equal_run.run_dir, random_run.run_dir


def test_report_is_self_contained_and_escapes_document_text(finished_runs):
    equal_dir, random_dir = finished_runs
    result = runner.invoke(app, ["report", str(equal_dir), "--baseline", str(random_dir)])
    assert result.exit_code == 0, result.output
    html = (equal_dir / "report.html").read_text()
    # one file: no script, no stylesheet, image or frame fetched from anywhere, no event handler
    tags = _tags(html)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & {tag for tag, _ in tags}
    assert not [(tag, a) for tag, attrs in tags for a in attrs if a in ("src", "href") or a.startswith("on")]
    assert html.count("<svg") >= 4  # cumulative pairs, rewards, labels over calls, cluster map
    for heading in ("Where the budget went", "Cluster map", "Top clusters", "Cost summary"):
        assert heading in html
    assert "random" in html  # the baseline line is labelled
    assert "&lt;script&gt;console.error(" in html and "onerror=&#34;console.error" in html


def _table_rows(html: str) -> list[list[str]]:
    """The text of every table row's cells, in order."""
    rows: list[list[str]] = []

    class Cells(HTMLParser):
        cell: list[str] | None = None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                rows.append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                rows[-1].append("".join(self.cell).strip())
                self.cell = None

    Cells().feed(html)
    return rows


def test_report_tables_show_the_baselines_numbers_beside_the_runs(finished_runs):
    from equal.report.rundir import load_run

    equal_dir, random_dir = finished_runs
    assert runner.invoke(app, ["report", str(equal_dir), "--baseline", str(random_dir)]).exit_code == 0
    rows = {row[0]: row[1:] for row in _table_rows((equal_dir / "report.html").read_text()) if row}
    mine, theirs = load_run(equal_dir).summary, load_run(random_dir).summary
    for label in ("python", "other"):  # documents and share of each label, this run's then the baseline's
        count, share, _, base_count, base_share, _ = rows[label]
        assert int(count) == mine.extracted_by_label.get(label, 0)
        assert int(base_count) == theirs.extracted_by_label.get(label, 0)
        assert base_share == f"{100 * theirs.label_shares().get(label, 0):.1f}%"
    assert rows["selection"] == ["equal", "random"]
    assert rows["pairs written"] == [f"{load_run(d).stats.counter('pairs_written'):,}" for d in finished_runs]
    # without a baseline the tables have this run's column only
    assert runner.invoke(app, ["report", str(equal_dir)]).exit_code == 0
    alone = {row[0]: row[1:] for row in _table_rows((equal_dir / "report.html").read_text()) if row}
    assert len(alone["python"]) == 3 and alone["selection"] == ["equal"]


def test_report_opens_in_headless_chromium_without_console_errors(finished_runs, tmp_path):
    if not chromium_available():
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium and chromium-driver (scripts/setup.sh installs them)")
        pytest.skip("chromium and chromedriver are not installed")
    equal_dir, random_dir = finished_runs
    assert runner.invoke(app, ["report", str(equal_dir), "--baseline", str(random_dir)]).exit_code == 0
    screenshot = tmp_path / "report.png"
    page = open_page(equal_dir / "report.html", screenshot)
    assert page.title.startswith("equal report")
    assert page.console_errors == []  # an unescaped <script> or onerror in a document would log here
    assert page.height > 1000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000


def test_report_of_a_directory_that_is_no_run(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "no stats.json" in result.output


def test_inspect_prints_a_summary_and_survives_markup_in_pairs(finished_runs):
    equal_dir, _ = finished_runs
    result = runner.invoke(app, ["inspect", str(equal_dir), "--pairs", "50"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for words in ("documents extracted", "top clusters", "last rounds", "extracted by label"):
        assert words in result.output
    # shown as text, not read as rich markup
    assert "[/unclosed]" in result.output and "[bold]markup[/bold]" in result.output


@pytest.mark.parametrize("fmt", ["messages", "alpaca", "sharegpt", "parquet", "hf"])
def test_export_formats_load_in_the_tools_readers(finished_runs, tmp_path, fmt):
    import datasets

    equal_dir, _ = finished_runs
    out = tmp_path / ("export_hf" if fmt == "hf" else f"export.{'parquet' if fmt == 'parquet' else 'jsonl'}")
    result = runner.invoke(app, ["export", str(equal_dir), "--out", str(out), "--format", fmt])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    if fmt == "hf":
        ds = datasets.load_from_disk(str(out))
    else:
        ds = datasets.load_dataset("parquet" if fmt == "parquet" else "json", data_files=str(out), split="train")
    assert len(ds) == report["pairs_out"] > 0
    columns = {"messages": "messages", "parquet": "messages", "hf": "messages", "alpaca": "instruction",
               "sharegpt": "conversations"}
    assert columns[fmt] in ds.column_names
    if fmt in ("messages", "parquet", "hf"):  # TRL's conversational format
        assert [m["role"] for m in ds[0]["messages"]] == ["user", "assistant"]
    if fmt in ("parquet", "hf"):  # provenance is a struct a reader can filter on, not JSON text
        assert isinstance(ds[0]["provenance"]["cluster"], int) and ds[0]["provenance"]["label"] in ("python", "other")
    if fmt in ("alpaca", "sharegpt"):  # LLaMA-Factory's dataset registry entry
        info = json.loads((out.parent / "dataset_info.json").read_text())
        assert info["export"]["file_name"] == out.name


def test_export_filters(tmp_path, replay_config):
    corpus = make_corpus(tmp_path / "corpus.jsonl")
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    for row in rows:  # four pairs per document: two near-copies, one exact copy, one distinct
        base = row["qa_pairs"][0]
        row["qa_pairs"] = [base, {"question": base["question"] + " exactly", "answer": base["answer"]},
                           dict(base), {"question": "What else?", "answer": row["id"] + " is its own answer."}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = run(replay_config(**{"corpus.path": str(corpus), "budget.fraction": 0.3})).run_dir
    total = sum(1 for _ in (run_dir / "dataset.jsonl").open())

    def export(*flags):
        result = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "x.jsonl"), "--overwrite", *flags])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    exact_only = export("--near-duplicates", "1")
    assert exact_only["removed"] == {"exact_duplicate": total // 4}
    near = export()
    assert near["removed"]["near_duplicate"] > 0 and near["pairs_out"] < exact_only["pairs_out"]
    capped = export("--near-duplicates", "1", "--max-pairs-per-document", "1")
    assert capped["pairs_out"] == total // 4
    rewards = sorted(json.loads(line)["provenance"]["pull_reward"] for line in (run_dir / "dataset.jsonl").open())
    median = rewards[len(rewards) // 2]
    by_reward = export("--min-reward", str(median), "--near-duplicates", "1")
    kept = [json.loads(line) for line in (tmp_path / "x.jsonl").open()]
    assert by_reward["removed"]["below_min_reward"] > 0 and all(r["provenance"]["pull_reward"] >= median for r in kept)


def test_compare_returns_a_typed_table_with_one_cell_per_run(finished_runs, tmp_path):
    import shutil

    from equal.report import compare_runs

    equal_dir, random_dir = finished_runs
    other = tmp_path / "other"
    shutil.copytree(random_dir, other)
    stats = json.loads((other / "stats.json").read_text())
    stats["summary"]["extracted_by_label"] = {"third": 3, "python": 1}  # a label the others never extracted
    (other / "stats.json").write_text(json.dumps(stats))
    comparison = compare_runs([equal_dir, other, random_dir], relevant="python")
    assert [r.name for r in comparison.runs] == ["equal", "other", "random"]
    rows = dict(comparison.rows())
    assert all(len(cells) == 3 for cells in rows.values())
    assert rows["share third"] == ["", "75.0%", ""]
    assert rows["share python (relevant)"][1] == "25.0%"
    shares = comparison.relevant_shares()
    assert shares[1] == 0.25 and shares[0] > shares[2]  # EQUAL put more of its budget on the relevant label
    assert rows["pairs written"][0] == str(comparison.runs[0].stats.counters["pairs_written"])
    result = runner.invoke(app, ["compare", str(equal_dir), str(other), str(random_dir), "--relevant", "python"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "share third" in result.output and "(relevant)" in result.output


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

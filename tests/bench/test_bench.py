"""`equal bench` end to end on a small synthetic benchmark (the CI-sized version of docs/benchmarks.md)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from equal.cli.main import app
from tests.helpers import BENCHMARKS, TOPICS, make_bench


def _text(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n)) + "."


def test_bench_writes_the_table_and_plots_and_resumes(tmp_path):
    data = make_bench(tmp_path / "bench")
    out = tmp_path / "results"
    strategies = ["EQUAL", "EQUAL, paper settings", "random documents", "random clusters", "avg-sim top-k", "DSIR",
                  "all"]
    args = ["bench", str(data), "--out", str(out), "--embedding", "hashing-256", "--budget", "0.05",
            "--budget", "0.2", "--seed", "0", "--seed", "1"]
    for strategy in strategies:
        args += ["--strategy", strategy]
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(results) == 2 * (6 * 2 * 2 + 2)  # two sets x (6 budgeted strategies x 2 budgets x 2 seeds + all)
    table = (out / "results.md").read_text()
    for strategy in strategies:
        assert f"| {strategy} |" in table
    assert "### python_faq" in table and "### champ" in table
    assert len(list(out.glob("*.png"))) == 2 * 7
    assert "## The bar" in table and "- 5%: relevant fraction EQUAL" in table and "EQUAL loses to:" in table
    assert "- 300 extracted passages: wikipedia 195, python_docs 60, sympy_docs 45" in table

    def mean(name, strategy, budget, metric):
        cells = [r[metric] for r in results if r["reference_set"] == name and r["strategy"] == strategy
                 and r["budget"] == budget]
        return sum(cells) / len(cells)

    for name, share in (("python_faq", 60 / 300), ("champ", 45 / 300)):
        assert abs(mean(name, "all", 0.05, "relevant_fraction") - share) < 1e-9
        assert mean(name, "all", 0.05, "llm_calls") == 300
        assert mean(name, "EQUAL", 0.2, "relevant_fraction") > 1.5 * mean(name, "random documents", 0.2,
                                                                           "relevant_fraction")
        assert mean(name, "random documents", 0.2, "llm_calls") == 60
    # a second call finds every result already there and recomputes nothing
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == len(results)


def test_ablation_adds_one_run_per_design_choice(tmp_path):
    from equal.bench import ABLATIONS

    data = make_bench(tmp_path / "bench")
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["bench", str(data), "--out", str(out), "--embedding", "hashing-256",
                                      "--budget", "0.1", "--seed", "0", "--reference-set", "python_faq",
                                      "--strategy", "EQUAL", "--ablation"])
    assert result.exit_code == 0, result.output
    runs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["strategy"] for r in runs] == ["EQUAL", *ABLATIONS]
    # the ablations change something: not every one of them picks exactly what EQUAL picked
    assert len({(r["relevant_fraction"], r["ot_heldout"]) for r in runs}) > 2
    # results.md sets each ablation beside the defaults, with its own numbers
    table = (out / "results.md").read_text().split("## Ablation")[1]
    rows = {cells[0]: [float(c) for c in cells[1:]] for line in table.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip("|").split("|")]] if cells[1][0].isdigit()}
    for r in runs:
        label = "**EQUAL (defaults)**" if r["strategy"] == "EQUAL" else r["strategy"]
        assert rows[label] == pytest.approx([r["ot_heldout"], r["relevant_fraction"]], abs=5e-4)


def test_bench_falls_back_to_the_partial_extraction(tmp_path):
    data = make_bench(tmp_path / "bench")
    (data / "extracted.jsonl").rename(data / "extracted.jsonl.partial")
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["bench", str(data), "--out", str(out), "--embedding", "hashing-256",
                                      "--budget", "0.1", "--seed", "0", "--reference-set", "champ",
                                      "--strategy", "random documents", "--strategy", "all"])
    assert result.exit_code == 0, result.output
    runs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["llm_calls"] for r in runs] == [30, 300]


def test_the_bar_is_the_callers_claim_not_the_librarys():
    from equal.bench import Bar
    from equal.bench.schema import BenchResult
    from equal.bench.tables import verdict

    def rows(strategy, budget, relevant, ot, calls):
        return BenchResult(reference_set="s", strategy=strategy, budget=budget, seed=0, ot_heldout=ot,
                           relevant_fraction=relevant, relevant_pairs_per_1k_calls=0.0, llm_calls=calls, tokens=0,
                           selection_seconds=0.0, pairs=0)

    results = [rows("EQUAL", 0.05, 0.6, 0.5, 5), rows("random documents", 0.05, 0.2, 0.7, 5),
               rows("EQUAL", 0.1, 0.6, 0.5, 10), rows("random documents", 0.1, 0.3, 0.7, 10),
               rows("all", 0.05, 0.2, 0.6, 100)]
    held = verdict(results, [0.05, 0.1], Bar(beats_at=0.05, ratio_at=0.1, min_ratio=1.5))
    assert "- 5%: relevant fraction EQUAL 0.600 vs random 0.200 (met)" in held
    assert "- 10%: relevant fraction EQUAL / random = 2.00 (met, needs 1.5)" in held
    stricter = verdict(results, [0.05, 0.1], Bar(beats_at=0.1, ratio_at=0.05, min_ratio=4))
    assert "- 5%: relevant fraction EQUAL / random = 3.00 (NOT met, needs 4)" in stricter
    assert "- 10%: relevant fraction EQUAL 0.600 vs random 0.300 (met)" in stricter


def test_the_selection_script_runs_strategies_of_the_one_table():
    import importlib.util

    from equal.bench import STRATEGIES, pipeline_overrides
    from equal.errors import InputError

    script = BENCHMARKS / "selection.py"
    spec = importlib.util.spec_from_file_location("selection", script)
    assert spec is not None and spec.loader is not None
    selection = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(selection)
    assert not hasattr(selection, "STRATEGIES")  # no second table
    for name in selection.DEFAULT:
        assert pipeline_overrides(name) == STRATEGIES[name].overrides  # type: ignore[attr-defined]
    with pytest.raises(InputError, match="not a strategy that runs the pipeline"):
        pipeline_overrides("DSIR")


def _context(tmp_path: Path, texts: list[str], reference: list[str]):
    from equal.bench.strategies import Context

    rows = [{"id": f"d{i}", "text": t, "qa_pairs": [{"question": f"q{i}?", "answer": "a"}]} for i, t in
            enumerate(texts)]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "reward.jsonl").write_text("".join(json.dumps({"question": q, "answer": q}) + "\n" for q in reference))
    return Context(corpus=tmp_path / "corpus.jsonl", rows=rows, reward_reference=tmp_path / "reward.jsonl",
                   embedding_model="hashing-256", cache_dir=tmp_path / "cache", work_dir=tmp_path)


def test_round_robin_gives_every_reference_example_its_nearest_documents(tmp_path):
    from equal.bench.strategies import avg_sim_top_k, round_robin_similarity

    rng = random.Random(0)
    python = [_text(rng, TOPICS["python_docs"], 40) for _ in range(12)]
    sympy = [_text(rng, TOPICS["sympy_docs"], 40) for _ in range(12)]
    reference = [_text(rng, TOPICS["python_docs"], 12) for _ in range(3)] + [_text(rng, TOPICS["sympy_docs"], 12)]
    ctx = _context(tmp_path, python + sympy, reference)
    budget = 4 / 24
    by_mean = avg_sim_top_k(ctx, budget, 0).document_ids
    by_turns = round_robin_similarity(ctx, budget, 0).document_ids
    sympy_ids = {f"d{i}" for i in range(12, 24)}
    assert len(by_mean) == len(by_turns) == 4 == len(set(by_turns))
    assert not set(by_mean) & sympy_ids  # the mean leans to the three Python examples
    assert len(set(by_turns) & sympy_ids) == 1  # the one SymPy example took its turn


def test_deduplicated_avg_sim_skips_near_duplicates(tmp_path):
    from equal.bench.strategies import avg_sim_top_k, avg_sim_top_k_deduplicated

    rng = random.Random(1)
    best = _text(rng, TOPICS["python_docs"], 40)
    others = [_text(rng, TOPICS["python_docs"], 40) for _ in range(5)] + \
        [_text(rng, TOPICS["wikipedia"], 40) for _ in range(4)]
    ctx = _context(tmp_path, [best, best + " ", best + "  ", *others], [best[:200]])
    plain = avg_sim_top_k(ctx, 3 / 12, 0).document_ids
    deduplicated = avg_sim_top_k_deduplicated(ctx, 3 / 12, 0).document_ids
    assert sorted(plain) == ["d0", "d1", "d2"]  # three copies of the same text
    assert deduplicated[0] in {"d0", "d1", "d2"} and not set(deduplicated[1:]) & {"d0", "d1", "d2"}
    assert len(deduplicated) == 3


def test_bench_downstream_prepares_the_pairs_of_the_cells_asked(tmp_path):
    from equal.bench.downstream import CELLS_FILE, read_cells

    data = make_bench(tmp_path / "bench")
    out = tmp_path / "results"
    args = ["bench", str(data), "--out", str(out), "--embedding", "hashing-256", "--budget", "0.05", "--budget",
            "0.1", "--seed", "0", "--reference-set", "champ"]
    for strategy in ("random documents", "avg-sim top-k", "all"):
        args += ["--strategy", strategy]
    assert CliRunner().invoke(app, args).exit_code == 0
    measured = {(r["strategy"], r["budget"]): r for r in
                (json.loads(line) for line in (out / "results.jsonl").read_text().splitlines())}
    result = CliRunner().invoke(app, ["bench-downstream", str(data), "--out", str(out), "--embedding", "hashing-256",
                                      "--prepare-only", "--strategy", "random documents", "--strategy", "all",
                                      "--budget", "0.1"])
    assert result.exit_code == 0, result.output
    assert "2 cells" in result.output
    cells = read_cells(out / CELLS_FILE)
    # the budget-free `all` is kept whatever its budget; each cell holds the pairs the bench measured
    assert sorted((c.strategy, c.budget) for c in cells) == [("all", 0.05), ("random documents", 0.1)]
    for cell in cells:
        assert len(cell.pairs) == measured[(cell.strategy, cell.budget)]["pairs"]
        assert cell.ot_heldout == measured[(cell.strategy, cell.budget)]["ot_heldout"]
    nothing = CliRunner().invoke(app, ["bench-downstream", str(data), "--out", str(out), "--prepare-only",
                                       "--seed", "5"])
    assert nothing.exit_code == 2 and "no result in" in nothing.output


def test_a_cell_counts_graded_pairs_and_the_calls_spent_on_distractors():
    """Graded pairs are those the cheap checks grade 4-5; the distractors' share counts documents, not pairs."""
    import numpy as np

    from equal.bench.runner import _measure
    from equal.bench.schema import CellKey, ExtractedPassage
    from equal.bench.strategies import Selection
    from equal.quality import ReferenceShape
    from equal.records import QAPair

    passages = {i: ExtractedPassage(id=i, text="t", fields={"source": source}, tokens=10)
                for i, source in [("a", "python_docs"), ("b", "distractor"), ("c", "distractor"), ("d", "wikipedia")]}
    standing = QAPair("How do I reverse a list in Python?", "Call reversed on it, or slice it with a step of -1.",
                      document_id="a")
    pointing = QAPair("What does the passage say about lists?", "Lists can be reversed in place.", document_id="b")
    selection = Selection(["a", "b", "c", "d"], [standing, pointing], seconds=0.0)
    result = _measure(CellKey("python_faq", "s", 0.05, 0), selection, passages, {"python_docs"},
                      np.ones((2, 4)), lambda texts: np.ones((len(texts), 4)), ReferenceShape(10.0))
    assert result.graded_pairs_per_1k_calls == 250.0  # one of two pairs passes, over 4 calls
    assert result.distractor_fraction == 0.5
    assert result.relevant_fraction == 0.25

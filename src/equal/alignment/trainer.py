"""Fine-tuning a sentence-transformers model with InfoNCE on alignment examples.

Uses sentence-transformers' trainer and its multiple-negatives ranking loss,
which is InfoNCE with in-batch negatives plus the given hard negatives:
``L = -log(e^{s(d,q+)/t} / (e^{s(d,q+)/t} + sum_{q-} e^{s(d,q-)/t}))`` with
cosine similarity ``s`` and ``scale = 1 / t``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from equal.alignment.examples import TrainingExample
from equal.errors import InputError

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "equal-alignment.json"


def trained_model_ready(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a model whose training finished (a resume never retrains it)."""
    return (out_dir / COMPLETE_MARKER).exists()


def require_alignment_extra() -> None:
    """Raise ConfigError, naming the ``align`` extra, unless the trainer's dependencies are installed."""
    from equal.extras import require

    for module in ("datasets", "accelerate"):
        require(module, "align", "contrastive alignment (alignment.enabled: true)")


def align_embedder(base_model: str, examples: list[TrainingExample], out_dir: Path, *, epochs: int = 2,
                   learning_rate: float = 2e-5, batch_size: int = 16, temperature: float = 0.02,
                   max_length: int = 256, random_state: int = 42, device: str = "auto") -> Path:
    """Train ``base_model`` on ``examples`` and save it to ``out_dir``; returns ``out_dir``.

    Args:
        base_model: path of a sentence-transformers model folder.
        examples: rows from :func:`~equal.alignment.build_examples`.
        epochs, learning_rate, batch_size, max_length: training settings
            (released scripts: 2 epochs, lr 1e-5, length 512 for bge-base).
        temperature: InfoNCE temperature t (paper: 0.02); the loss scale is 1/t.
        random_state: seed of shuffling and initialisation.
        device: ``auto`` (GPU when present), ``cpu`` or ``cuda``.

    Raises:
        ConfigError: the ``align`` extra (datasets, accelerate) is not installed.
        InputError: there are no examples to train on.
    """
    require_alignment_extra()
    if not examples:
        raise InputError("alignment has no training pairs: the warm-up extracted none; "
                         "raise the budget or warmup.fraction_of_budget, or disable alignment")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_DISABLED", "true")
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    try:
        from sentence_transformers.sentence_transformer import losses
        from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import losses  # type: ignore[no-redef,attr-defined]
        from sentence_transformers.training_args import BatchSamplers  # type: ignore[no-redef]

    from equal.embedding.sentence import pick_device

    model = SentenceTransformer(base_model, device=pick_device(device))
    model.max_seq_length = max_length
    n_neg = len(examples[0].negatives)
    columns: dict[str, list[str]] = {"anchor": [e.anchor for e in examples], "positive": [e.positive for e in examples]}
    for j in range(n_neg):
        columns[f"negative_{j + 1}"] = [e.negatives[j] for e in examples]
    dataset = Dataset.from_dict(columns)
    work = out_dir.with_name(out_dir.name + ".training")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, warmup_steps=0, seed=random_state, data_seed=random_state,
        # a document's pairs share its text: never put two in one batch, or one would be a false negative
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no", report_to="none", logging_steps=50, disable_tqdm=True,
        dataloader_pin_memory=model.device.type == "cuda",
    )
    loss = losses.MultipleNegativesRankingLoss(model, scale=1.0 / temperature)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    result = trainer.train()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.save(str(out_dir))
    shutil.rmtree(work, ignore_errors=True)
    (out_dir / COMPLETE_MARKER).write_text(json.dumps({
        "base_model": base_model, "examples": len(examples), "negatives_per_example": n_neg, "epochs": epochs,
        "learning_rate": learning_rate, "batch_size": batch_size, "temperature": temperature,
        "max_length": max_length, "seed": random_state, "train_loss": result.training_loss,
    }, indent=1))
    logger.info("aligned embedder saved to %s (train loss %.4f)", out_dir, result.training_loss)
    return out_dir

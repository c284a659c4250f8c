"""The alignment phase: fine-tune the embedder on the warm-up pairs, re-embed the corpus with it.

It returns a new :class:`~equal.run.embedders.EmbeddingSpace`; the space it
was given is left as it was. See ``docs/alignment.md``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from functools import partial

from equal.embedding import EmbeddingCache, SentenceTransformerEmbedder
from equal.errors import ConfigError
from equal.run.builders import corpus_embedder
from equal.run.context import RunContext
from equal.run.embedders import EmbeddingSpace, embed_corpus, embed_texts
from equal.run.inputs import RunInputs
from equal.run.warmup import Warmup

logger = logging.getLogger(__name__)

MODEL_DIR = "aligned_model"


def align(ctx: RunContext, space: EmbeddingSpace, inputs: RunInputs, warmup: Warmup,
          cache: EmbeddingCache) -> EmbeddingSpace:
    """The space of the embedder aligned on the warm-up (a document near the pairs extracted from it).

    A model already trained in the run directory is reused, never retrained.
    With fewer than two warm-up documents that gave pairs, alignment is
    skipped (``alignment_skipped``) and ``space`` is returned. The corpus is
    re-embedded with the aligned model, where ``executor`` says; the reward
    keeps the base space unless ``alignment.reward_model`` is ``aligned``.

    Raises:
        ConfigError: the embedder is not a sentence-transformers model.
    """
    from equal.alignment import align_embedder, build_examples
    from equal.alignment.trainer import trained_model_ready

    cfg, emb_cfg, stats, progress = ctx.config.alignment, ctx.config.embedding, ctx.stats, ctx.progress
    base_path = getattr(space.embedders.text, "path", None)
    if base_path is None:
        raise ConfigError("alignment needs a sentence-transformers embedder; set embedding.model to 'minilm' "
                          "or a local model folder, or set alignment.enabled: false")
    model_dir = ctx.run_dir / MODEL_DIR
    if trained_model_ready(model_dir):
        stats.inc("alignment_reused")
    else:
        with_pairs = [(i, e) for i, e in zip(warmup.documents, warmup.extractions) if e.pairs]
        if len(with_pairs) < 2:
            logger.warning("alignment skipped: the warm-up gave pairs for %d documents; need 2", len(with_pairs))
            stats.inc("alignment_skipped")
            return space
        texts = [p.as_text() for _, e in with_pairs for p in e.pairs]
        owner = [j for j, (_, e) in enumerate(with_pairs) for _ in e.pairs]
        examples = build_examples(
            [inputs.documents[i].id for i, _ in with_pairs], [inputs.documents[i].text for i, _ in with_pairs],
            texts, owner, space.documents[[i for i, _ in with_pairs]],
            embed_texts(space.embedders.text, texts, cache, progress, "embedding warm-up pairs"),
            n_negatives=cfg.hard_negatives, rank_window=cfg.negative_ranks, random_state=ctx.config.seed,
        )
        with progress.task(f"aligning the embedder on {len(examples)} pairs", total=None):
            align_embedder(base_path, examples, model_dir, epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                           batch_size=cfg.batch_size, temperature=cfg.temperature, max_length=cfg.max_length,
                           random_state=ctx.config.seed, device=emb_cfg.device)
        stats.inc("alignment_examples", len(examples))
    weights = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()[:16]
    load = partial(SentenceTransformerEmbedder, str(model_dir), device=emb_cfg.device, batch_size=emb_cfg.batch_size,
                   max_length=emb_cfg.max_length, cache_name=f"aligned:{weights}")
    aligned = load()
    # on Ray, the actors load the aligned model from RUN_DIR: it must lie on storage every node sees
    embedders = replace(space.embedders, text=aligned, corpus=corpus_embedder(load, aligned.name, ctx.config.executor),
                        reward=aligned if cfg.reward_model == "aligned" else space.embedders.reward)
    reference = space.reference
    if cfg.reward_model == "aligned":
        reference = embed_texts(aligned, [p.as_text() for p in inputs.reference], cache, progress,
                                "embedding reference")
    documents = embed_corpus(embedders, inputs.documents, ctx.caches, progress, "embedding documents (aligned)")
    return EmbeddingSpace(embedders, documents, reference)

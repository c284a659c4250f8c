"""A run's inputs: the corpus and the reference set, read once and embedded once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np

from equal.config import CorpusConfig, ReplayExtractionConfig
from equal.corpus import read_documents, read_reference
from equal.corpus.readers import corpus_files, outline
from equal.corpus.store import PassageStore, open_or_build, store_key
from equal.embedding import EmbeddingCache, normalize
from equal.errors import InputError
from equal.progress import Progress
from equal.records import Document, QAPair
from equal.run.context import CacheLayout, RunContext
from equal.run.embedders import Embedders, embed_corpus, embed_texts
from equal.stats import Stats


@dataclass(frozen=True, slots=True)
class RunInputs:
    """The documents and the reference set, with their vectors under the configured (base) embedder.

    Attributes:
        documents: the corpus's passages, in corpus order; a document's index is its row below.
        reference: the reference examples of the task.
        document_vectors: ``(n, d)`` float32 unit vectors of the documents.
        reference_vectors: ``(r, d)`` float32 unit vectors of the reference examples (``Question: q\\nAnswer: a``).
        similarity: ``(n,)`` float, each document's cosine similarity to the reference centroid; it
            ranks the warm-up, the documents inside a cluster and the similarity prior at no LLM cost.
    """

    documents: Sequence[Document]
    reference: list[QAPair]
    document_vectors: np.ndarray
    reference_vectors: np.ndarray
    similarity: np.ndarray


def read_corpus_and_reference(ctx: RunContext) -> tuple[PassageStore, list[QAPair]]:
    """The corpus's passages (in their store) and the reference examples; skips are counted in ``ctx.stats`` by
    reason.

    The passages are read once into a memory-mapped passage store among the
    run's caches (:mod:`equal.corpus.store`); a later run of the same corpus
    with the same reading settings reuses it, and gets the same counters.

    Raises:
        InputError: the corpus yields fewer than two usable documents, or the
            reference set is unusable or too small.
    """
    cfg, stats = ctx.config, ctx.stats
    replay = cfg.extraction.replay_field if isinstance(cfg.extraction, ReplayExtractionConfig) else None
    documents = read_passages(cfg.corpus, keep=tuple(f for f in (cfg.corpus.label_field, replay) if f),
                              # stored pairs belong to the whole record, so replay never splits it
                              max_passage_chars=None if replay else cfg.corpus.max_passage_chars,
                              caches=ctx.caches, progress=ctx.progress, stats=stats)
    if len(documents) < 2:
        skips = {k: v for k, v in stats.as_dict().items() if k.startswith("skipped_")}
        held = outline(cfg.corpus.path, cfg.corpus.format)  # type: ignore[arg-type]
        raise InputError(
            f"the corpus {cfg.corpus.path} yielded {len(documents)} usable documents "
            f"(skips: {', '.join(f'{k}={v}' for k, v in skips.items()) or 'none'}); "
            + (f"{held}: point corpus.path at the files that hold the documents" if held else
               "check corpus.text_field and the file's contents")
        )
    if replay and replay not in documents.metadata_fields:
        # a run would go to the end and write nothing: say so before anything is spent
        raise InputError(
            f"no record of the corpus {cfg.corpus.path} has the field {replay!r} that extraction.replay_field "
            "(--replay-field) names; replay needs each record's stored pairs there (a list of "
            "{\"question\", \"answer\"}, e.g. what `equal extract` writes as qa_pairs): set the field's name, "
            "or use extractor local or openai"
        )
    reference = read_reference(cfg.reference.path, fmt=cfg.reference.format,  # type: ignore[arg-type]
                               min_examples=cfg.reference.min_examples, limit=cfg.reference.limit, stats=stats)
    return documents, reference


def read_passages(corpus: CorpusConfig, *, keep: tuple[str, ...], max_passage_chars: int | None,
                  caches: CacheLayout, progress: Progress, stats: Stats) -> PassageStore:
    """The corpus's passages (at most ``corpus.limit``) in their store among ``caches``, read now or reused."""
    settings = {"text_field": corpus.text_field, "id_field": corpus.id_field, "format": corpus.format,
                "min_chars": corpus.min_chars, "max_document_chars": corpus.max_document_chars,
                "max_passage_chars": max_passage_chars, "keep_fields": list(keep), "limit": corpus.limit}
    key = store_key(corpus_files(corpus.path, corpus.format), {"path": str(corpus.path), **settings},  # type: ignore[arg-type]
                    contents=corpus.verify == "content")

    def read(counters: Stats) -> Iterator[Document]:
        with progress.task("reading corpus", total=None) as task:
            docs = read_documents(
                corpus.path, text_field=corpus.text_field, id_field=corpus.id_field,  # type: ignore[arg-type]
                fmt=corpus.format, min_chars=corpus.min_chars, max_document_chars=corpus.max_document_chars,
                keep_fields=keep, stats=counters, max_passage_chars=max_passage_chars)
            for doc in islice(docs, corpus.limit or None):
                yield doc
                task.advance()

    return open_or_build(caches.passages(key), read, stats, verify=corpus.verify)


def embed_inputs(ctx: RunContext, documents: Sequence[Document], reference: list[QAPair], embedders: Embedders,
                 cache: EmbeddingCache) -> RunInputs:
    """Embed the corpus (into its resumable store) and the reference set, and rank documents by similarity."""
    document_vectors = embed_corpus(embedders, documents, ctx.caches, ctx.progress, "embedding documents")
    reference_vectors = embed_texts(embedders.text, [p.as_text() for p in reference], cache, ctx.progress,
                                    "embedding reference")
    similarity = document_vectors @ normalize(reference_vectors.mean(0, keepdims=True))[0]
    return RunInputs(documents, reference, document_vectors, reference_vectors, similarity)

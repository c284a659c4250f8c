"""Training examples for alignment: (document, one of its pairs, hard negative pairs).

A document should lie close to the question-answer pairs extracted from it.
Hard negatives are pairs of *other* documents that the current embedder
already finds similar to the document: for each document, rank every pair of
the pool by cosine similarity and draw ``n_negatives`` from ranks 2-200
(1-based), never one of the document's own pairs (docs/alignment.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class TrainingExample:
    """One InfoNCE row: the document text, a positive pair text and the hard-negative pair texts."""

    document_id: str
    anchor: str
    positive: str
    negatives: list[str]


def mine_hard_negatives(doc_embeddings: np.ndarray, pair_embeddings: np.ndarray, pair_document: np.ndarray, *,
                        n_negatives: int = 7, rank_window: tuple[int, int] = (2, 200),
                        random_state: int = 0) -> list[np.ndarray]:
    """Hard-negative pair indices for each document.

    Args:
        doc_embeddings: ``(n_docs, d)`` float32, unit rows.
        pair_embeddings: ``(n_pairs, d)`` float32, unit rows.
        pair_document: ``(n_pairs,)`` int, the document index each pair came from.
        n_negatives: negatives drawn per document (fewer when the window holds fewer).
        rank_window: 1-based similarity ranks ``(first, last)`` to draw from, counted
            after the document's own pairs are removed.
        random_state: seed of the draw.

    Returns:
        For each document, an int64 array of pair indices, none of them its own.
    """
    rng = np.random.default_rng(random_state)
    pair_document = np.asarray(pair_document)
    sims = doc_embeddings @ pair_embeddings.T  # (n_docs, n_pairs)
    first, last = rank_window
    out = []
    for i in range(len(doc_embeddings)):
        order = np.argsort(-sims[i], kind="stable")
        order = order[pair_document[order] != i]  # never the document's own pairs
        window = order[first - 1:last]
        k = min(n_negatives, len(window))
        out.append(np.sort(rng.choice(window, size=k, replace=False)) if k else np.array([], dtype=np.int64))
    return out


def build_examples(document_ids: Sequence[str], document_texts: Sequence[str], pair_texts: Sequence[str],
                   pair_document: Sequence[int], doc_embeddings: np.ndarray, pair_embeddings: np.ndarray, *,
                   n_negatives: int = 7, rank_window: tuple[int, int] = (2, 200),
                   random_state: int = 0) -> list[TrainingExample]:
    """One example per (document, own pair), each with the document's hard negatives.

    Every example gets the same number of negatives (the fewest any document
    has, at most ``n_negatives``) because the loss takes a fixed column count.
    """
    owner = np.asarray(pair_document, dtype=np.int64)
    negatives = mine_hard_negatives(doc_embeddings, pair_embeddings, owner, n_negatives=n_negatives,
                                    rank_window=rank_window, random_state=random_state)
    with_pairs = sorted(set(owner.tolist()))
    n_common = min((len(negatives[i]) for i in with_pairs), default=0)
    examples = []
    for p, i in enumerate(owner):
        examples.append(TrainingExample(
            document_id=document_ids[i], anchor=document_texts[i], positive=pair_texts[p],
            negatives=[pair_texts[j] for j in negatives[i][:n_common]],
        ))
    return examples

"""The warm-up: a sample extracted before the bandit; it sets the reward offset and, by default, priors.

Its size is ``warmup.fraction_of_budget`` of the document budget (at least
``warmup.min_documents``). ``warmup.selection`` picks it: ``random`` (the
paper), ``reference`` (the documents most similar to the reference centroid)
or ``mixed`` (half each, the similar half first). Its pairs are kept in the
data set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from equal.config import WarmupConfig
from equal.progress import ItemsDone, Progress, counting
from equal.records import Extraction, Pull, QAPair
from equal.run.budget import Budget
from equal.run.rewards import Reward
from equal.stats import Stats

BATCH = 8  # documents extracted at a time under budget.tokens, so the cap can stop the warm-up early

CountedExtract = Callable[[list[int], ItemsDone], Sequence[Extraction]]
"""Extracts documents by index, one :class:`Extraction` per document in order, reporting each as it is answered."""

# warmup.selection -> how many of n warm-up documents are chosen by similarity (the rest at random)
SIMILAR_SHARE: dict[str, Callable[[int], int]] = {
    "random": lambda n: 0,
    "reference": lambda n: n,
    "mixed": lambda n: n // 2,
}


@dataclass(frozen=True, slots=True)
class Warmup:
    """What the warm-up extracted.

    Attributes:
        documents: the corpus indices extracted, in order: first those chosen by similarity, then the random ones.
        extractions: one per document, in the same order.
        similar: how many of the first ``documents`` were chosen by similarity.
    """

    documents: list[int]
    extractions: list[Extraction]
    similar: int

    @property
    def pairs(self) -> list[list[QAPair]]:
        """The pairs of each document."""
        return [e.pairs for e in self.extractions]


def warmup_size(document_budget: int, n_documents: int, config: WarmupConfig) -> int:
    """Documents the warm-up extracts: a share of the budget, at least ``min_documents``, never the whole corpus."""
    wanted = max(config.min_documents, round(config.fraction_of_budget * document_budget))
    return int(min(document_budget, n_documents - 1, wanted))


def run_warmup(size: int, selection: str, similarity: np.ndarray, extract: CountedExtract, budget: Budget,
               rng: np.random.Generator, progress: Progress, stats: Stats) -> tuple[Warmup, Budget]:
    """Choose ``size`` documents by ``selection`` and extract them, in batches, while the budget lasts.

    ``budget.tokens`` can end the warm-up early (counted as ``warmup_cut_by_budget``): under a
    token cap the documents go in batches of :data:`BATCH`, else all in one.

    Args:
        size: documents to extract.
        selection: a key of :data:`SIMILAR_SHARE`.
        similarity: ``(n,)`` each document's similarity to the reference centroid.
        extract: extracts documents by index, reporting each as it is answered (the bar moves per document).
        budget: the budget before the warm-up.
        rng: draws the random part.

    Returns:
        What the warm-up extracted, and the budget after it.
    """
    n_similar = SIMILAR_SHARE[selection](size)
    similar = [int(i) for i in np.argsort(-similarity, kind="stable")[:n_similar]]
    rest = np.setdiff1d(np.arange(len(similarity)), similar)
    chosen = similar + [int(i) for i in rng.choice(rest, size=size - n_similar, replace=False)]
    extractions: list[Extraction] = []
    # without a token cap nothing can stop the warm-up midway: one batch keeps a server's request slots full
    batch_size = BATCH if budget.max_tokens is not None else max(size, 1)
    with progress.task("warm-up extraction", total=size) as task:
        for start in range(0, size, batch_size):
            if budget.exhausted():
                stats.inc("warmup_cut_by_budget")
                break
            batch = chosen[start:start + batch_size]
            with counting(task, len(batch)) as answered:
                extracted = list(extract(batch, answered))
            for extraction in extracted:
                budget = budget.charged(1, extraction.generation.tokens_in + extraction.generation.tokens_out)
            extractions += extracted
    chosen = chosen[:len(extractions)]
    return Warmup(chosen, extractions, min(n_similar, len(chosen))), budget


def warmup_pulls(warmup: Warmup, docs_per_pull: int, reward: Reward,
                 offset_setting: float | str) -> tuple[list[Pull], float]:
    """Cut the warm-up into pseudo-pulls of ``docs_per_pull`` documents, calibrate the offset, reward them.

    The documents chosen by similarity and the random ones are cut apart, and
    ``reward.offset: auto`` calibrates on the random pulls alone (see
    :func:`equal.reward.calibrate_offset`). A pseudo-pull is round -1, cluster
    -1; one without pairs has distance ``None`` and reward 0.

    Returns:
        The pseudo-pulls (the similar ones first) and the offset.
    """
    similar = _cut(warmup.extractions[:warmup.similar], docs_per_pull)
    chunks = similar + _cut(warmup.extractions[warmup.similar:], docs_per_pull)
    pairs = [[p for e in chunk for p in e.pairs] for chunk in chunks]
    scores = reward.warm(pairs, len(similar), offset_setting)
    pulls = [Pull(-1, -1, [e.document_id for e in chunk], its_pairs, d, r)
             for chunk, its_pairs, d, r in zip(chunks, pairs, scores.distances, scores.rewards)]
    return pulls, scores.offset


def rewards_of(pulls: Sequence[Pull]) -> list[float]:
    """The rewards of the pulls that had pairs."""
    return [p.reward for p in pulls if p.distance is not None]


def _cut(extractions: list[Extraction], size: int) -> list[list[Extraction]]:
    return [extractions[start:start + size] for start in range(0, len(extractions), size)]

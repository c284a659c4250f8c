"""Running every strategy at every budget and seed, and measuring what each picked.

``run_bench`` appends one :class:`~equal.bench.schema.BenchResult` per (reference set,
strategy, budget, seed) to ``results.jsonl`` (resumable) and returns them; ``write_results``
turns them into ``results.md`` (``equal.bench.tables``) and plots (``equal.bench.plots``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from equal.bench.schema import BenchManifest, BenchResult, CellKey, ExtractedPassage, read_extracted, read_results
from equal.bench.strategies import BUDGET_FREE, STRATEGIES, Context, Selection
from equal.errors import InputError
from equal.progress import NullProgress, Progress
from equal.quality import ReferenceShape, grade

#: the least cheap-check grade a pair needs to count as graded (the quality reward's default threshold)
GRADED = 4
#: the source label ``equal make-bench --distractors`` gives its distractor passages
DISTRACTOR_SOURCE = "distractor"

logger = logging.getLogger(__name__)


@dataclass
class BenchData:
    """A benchmark folder: ``manifest.json`` (from ``equal make-bench``) and the replay corpus.

    ``extracted`` is the corpus with every document's pairs (``equal extract``
    writes it); documents it lacks are left out of every strategy alike.
    """

    root: Path
    extracted: Path

    def manifest(self) -> BenchManifest:
        """The benchmark's ``manifest.json``.

        Raises:
            InputError: it is missing or is not a manifest.
        """
        path = self.root / "manifest.json"
        if not path.exists():
            raise InputError(f"{path} is missing; build the benchmark with `equal make-bench {self.root}`")
        try:
            return BenchManifest.from_json(json.loads(path.read_text()))
        except ValueError as exc:
            raise InputError(f"{path} is not a benchmark manifest ({exc})") from None

    def passages(self) -> list[ExtractedPassage]:
        """Every extracted passage: id, text, source, qa_pairs and tokens."""
        return read_extracted(self.extracted)


def _measure(key: CellKey, selection: Selection, passages: dict[str, ExtractedPassage], relevant: set[str],
             heldout: np.ndarray, embed: Any, shape: ReferenceShape) -> BenchResult:
    from equal.reward import ot_distance

    calls = len(selection.document_ids)
    graded = sum(1 for p in selection.pairs if grade(p, shape).grade >= GRADED)
    distractors = sum(1 for i in selection.document_ids if passages[i].source == DISTRACTOR_SOURCE)
    relevant_docs = [i for i in selection.document_ids if passages[i].source in relevant]
    relevant_pairs = sum(1 for p in selection.pairs if passages[p.document_id].source in relevant)
    vectors = embed([p.as_text() for p in selection.pairs])
    return BenchResult(
        reference_set=key.reference_set, strategy=key.strategy, budget=key.budget, seed=key.seed,
        ot_heldout=ot_distance(vectors, heldout).value if len(selection.pairs) else math.nan,
        relevant_fraction=len(relevant_docs) / max(calls, 1),
        relevant_pairs_per_1k_calls=1000 * relevant_pairs / max(calls, 1),
        llm_calls=calls,
        tokens=sum(passages[i].tokens for i in selection.document_ids),
        selection_seconds=selection.seconds,
        pairs=len(selection.pairs),
        graded_pairs_per_1k_calls=1000 * graded / max(calls, 1),
        distractor_fraction=distractors / max(calls, 1),
    )


def run_bench(data: BenchData, out_dir: Path, *, budgets: list[float], seeds: list[int],
              strategies: list[str], reference_sets: list[str] | None = None, embedding_model: str = "minilm",
              progress: Progress | None = None,
              on_result: Callable[[BenchResult], None] | None = None) -> list[BenchResult]:
    """Every (reference set, strategy, budget, seed), resumable: appends to ``results.jsonl``, returns them all.

    Returns the results of ``strategies`` on the reference sets asked (default: every one of
    the manifest), those found in ``results.jsonl`` from an earlier call included, ordered by
    reference set, budget, strategy (in the order asked) and seed.

    Every strategy's pairs go through the same decontamination against the reward
    reference (the pipeline does it already; the others get it here), and are
    measured with the same embedder against the held-out part.

    ``on_result`` gets each result as soon as it is measured (not those read back from
    ``results.jsonl``), so a caller can report every finished cell.
    """
    from equal.config import EmbeddingConfig
    from equal.corpus import read_reference
    from equal.embedding import EmbeddingCache, embed_cached
    from equal.filters import NgramIndex
    from equal.run.builders import build_embedder

    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        raise InputError(f"unknown strategies {unknown}; choose from {list(STRATEGIES)}")
    progress = progress or NullProgress()
    manifest = data.manifest()
    sets = reference_sets or list(manifest.reference_sets)
    out_dir.mkdir(parents=True, exist_ok=True)
    passages = data.passages()
    if not passages:
        raise InputError(f"{data.extracted} holds no extracted documents; run `equal extract` on the corpus first")
    by_id = {p.id: p for p in passages}
    rows = [p.to_json() for p in passages]  # as the strategies' Context reads them
    done_path = out_dir / "results.jsonl"
    done = {r.key: r for r in read_results(done_path)}
    embedder = build_embedder(EmbeddingConfig(model=embedding_model))
    cache = EmbeddingCache(out_dir / "cache" / "embeddings.sqlite")

    def embed(texts: list[str]) -> np.ndarray:
        return embed_cached(embedder, texts, cache)

    per_set: dict[str, tuple[np.ndarray, NgramIndex, ReferenceShape]] = {}
    jobs = [CellKey(name, strategy, budget, seed) for name in sets for strategy in strategies for budget in budgets
            for seed in seeds if not (strategy in BUDGET_FREE and budget != budgets[0])]
    try:
        with done_path.open("a") as log, progress.task("bench runs", total=len(jobs)) as task:
            for key in jobs:
                if key in done:
                    task.advance()
                    continue
                entry = manifest.reference_sets[key.reference_set]
                reward = data.root / entry.reward
                if key.reference_set not in per_set:  # read and embed each reference set once, not once per run
                    reward_pairs = read_reference(reward, min_examples=1)
                    per_set[key.reference_set] = (
                        embed([p.as_text() for p in read_reference(data.root / entry.heldout, min_examples=1)]),
                        NgramIndex(t for p in reward_pairs for t in (p.question, p.answer)),
                        ReferenceShape.of(reward_pairs),
                    )
                heldout, index, shape = per_set[key.reference_set]
                ctx = Context(corpus=data.extracted, rows=rows, reward_reference=reward,
                              embedding_model=embedding_model, cache_dir=out_dir / "cache",
                              work_dir=out_dir)
                selection = STRATEGIES[key.strategy](ctx, key.budget, key.seed)
                selection.pairs = [p for p in selection.pairs if not index.copies(p)]
                result = _measure(key, selection, by_id, set(entry.relevant_sources), heldout, embed, shape)
                log.write(json.dumps(result.to_json()) + "\n")
                log.flush()
                done[key] = result
                task.advance()
                task.note(f"{key.reference_set}: {key.strategy} at {key.budget:.0%}, seed {key.seed}")
                if on_result is not None:
                    on_result(result)
    finally:
        cache.close()
    order = {name: i for i, name in enumerate(strategies)}  # the table lists strategies in the order asked
    return sorted((r for k, r in done.items() if k.reference_set in sets and k.strategy in strategies),
                  key=lambda r: (sets.index(r.reference_set), r.budget, order[r.strategy], r.seed))

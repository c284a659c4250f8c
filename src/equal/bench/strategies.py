"""The strategies `equal bench` compares. Each picks documents for a budget; their stored pairs are the output.

- EQUAL variants and the in-loop baselines run the real pipeline with the
  replay extractor, each a ``bandit.selection`` strategy of the run
  (``paper``, ``random`` documents, ``random-clusters``) or EQUAL with
  config overrides (the ablations);
- ``avg-sim top-k`` (the paper's Avg-sim baseline) ranks documents by their
  mean cosine similarity to the reference examples and takes the top ones;
  ``avg-sim top-k, deduplicated`` skips a document too close to one already taken;
- ``round-robin similarity`` (RDS+'s selection rule): each reference example in
  turn takes its nearest document not yet taken, so every part of the task is covered;
- ``DSIR`` is the ``data-selection`` package run as it is: hashed n-gram
  importance resampling of the corpus towards the reference texts;
- ``all`` extracts every document.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from equal.errors import InputError
from equal.records import QAPair


@dataclass
class Selection:
    """What a strategy picked, and the selection's own wall time (no LLM: pairs are replayed)."""

    document_ids: list[str]
    pairs: list[QAPair]
    seconds: float


@dataclass
class Context:
    """Everything a strategy may read: the replay corpus, one reference set, a work folder."""

    corpus: Path  # JSONL with id, text, source and qa_pairs for every document
    rows: list[dict[str, Any]]
    reward_reference: Path
    embedding_model: str
    cache_dir: Path
    work_dir: Path

    def pairs_of(self, ids: list[str]) -> list[QAPair]:
        by_id = {r["id"]: r for r in self.rows}
        return [QAPair(question=p["question"], answer=p["answer"], document_id=i)
                for i in ids for p in by_id[i].get("qa_pairs") or []]


Strategy = Callable[[Context, float, int], Selection]


@dataclass(frozen=True)
class PipelineStrategy:
    """A strategy that runs ``equal run`` with the replay extractor and these config overrides.

    ``overrides`` (dotted config keys) is what makes it this strategy; scripts that run
    the pipeline themselves (``benchmarks/selection.py``) read it from here too.
    """

    overrides: dict[str, Any] = field(default_factory=dict)

    def __call__(self, ctx: Context, budget: float, seed: int) -> Selection:
        from equal import load_config, run

        with tempfile.TemporaryDirectory(dir=ctx.work_dir) as tmp:
            config = load_config(None, {
                "corpus.path": str(ctx.corpus), "corpus.format": "jsonl",  # also for extracted.jsonl.partial
                "corpus.id_field": "id", "corpus.label_field": "source",
                "reference.path": str(ctx.reward_reference), "embedding.model": ctx.embedding_model,
                "extraction.extractor": "replay", "extraction.cache_dir": str(ctx.cache_dir),
                "budget.fraction": budget, "seed": seed, "output.dir": tmp, **self.overrides,
            })
            started = time.perf_counter()
            result = run(config)
            return Selection(result.selected_documents, result.pairs, time.perf_counter() - started)


def pipeline(overrides: dict[str, Any]) -> PipelineStrategy:
    """A strategy that runs ``equal run`` with the replay extractor and these config overrides."""
    return PipelineStrategy(overrides)


def _n_documents(ctx: Context, budget: float) -> int:
    return max(1, int(budget * len(ctx.rows)))


def _similarities(ctx: Context) -> np.ndarray:
    """Cosine similarity of every document (rows) to every reward example (columns), in the bench's embedder."""
    from equal.config import EmbeddingConfig
    from equal.corpus import read_reference
    from equal.embedding import EmbeddingCache, embed_cached
    from equal.run.builders import build_embedder

    embedder = build_embedder(EmbeddingConfig(model=ctx.embedding_model))
    cache = EmbeddingCache(ctx.cache_dir / "embeddings.sqlite")
    try:
        docs = embed_cached(embedder, [r["text"] for r in ctx.rows], cache)
        reference = embed_cached(embedder, [p.as_text() for p in read_reference(ctx.reward_reference,
                                                                                 min_examples=1)], cache)
    finally:
        cache.close()
    return docs @ reference.T  # vectors are unit length


def _documents(ctx: Context) -> np.ndarray:
    from equal.config import EmbeddingConfig
    from equal.embedding import EmbeddingCache, embed_cached
    from equal.run.builders import build_embedder

    cache = EmbeddingCache(ctx.cache_dir / "embeddings.sqlite")
    try:
        return embed_cached(build_embedder(EmbeddingConfig(model=ctx.embedding_model)),
                            [r["text"] for r in ctx.rows], cache)
    finally:
        cache.close()


def _selection(ctx: Context, order: list[int] | np.ndarray, started: float) -> Selection:
    ids = [ctx.rows[i]["id"] for i in order]
    return Selection(ids, ctx.pairs_of(ids), time.perf_counter() - started)


def avg_sim_top_k(ctx: Context, budget: float, seed: int) -> Selection:
    """The documents with the highest mean cosine similarity to the reference examples."""
    started = time.perf_counter()
    score = _similarities(ctx).mean(1)
    return _selection(ctx, np.argsort(-score, kind="stable")[:_n_documents(ctx, budget)], started)


#: cosine similarity in the bench's embedder above which two documents count as near duplicates
NEAR_DUPLICATE = 0.9


def avg_sim_top_k_deduplicated(ctx: Context, budget: float, seed: int) -> Selection:
    """Avg-sim's ranking, skipping a document whose cosine to one already taken is ``NEAR_DUPLICATE`` or more.

    Near duplicates of the reference's centre would otherwise fill the budget with the
    same few topics. Falls back to the skipped ones, in rank order, if too few are left.
    """
    started = time.perf_counter()
    docs = _documents(ctx)
    ranked = np.argsort(-_similarities(ctx).mean(1), kind="stable")
    n = _n_documents(ctx, budget)
    taken: list[int] = []
    skipped: list[int] = []
    for i in ranked:
        if len(taken) == n:
            break
        if taken and float((docs[taken] @ docs[i]).max()) >= NEAR_DUPLICATE:
            skipped.append(int(i))
        else:
            taken.append(int(i))
    return _selection(ctx, taken + skipped[:n - len(taken)], started)


def round_robin_similarity(ctx: Context, budget: float, seed: int) -> Selection:
    """RDS+'s rule: reference examples take turns, each taking its nearest document not taken yet.

    Every reference example gets documents, not just the ones nearest the reference's
    centre: the whole task stays covered. The examples' order is shuffled by ``seed``.
    """
    started = time.perf_counter()
    similarity = _similarities(ctx)
    ranks = np.argsort(-similarity, axis=0, kind="stable")  # column j: documents by closeness to example j
    turns = np.random.default_rng(seed).permutation(similarity.shape[1])
    n = _n_documents(ctx, budget)
    cursor = np.zeros(similarity.shape[1], dtype=int)
    taken: list[int] = []
    seen: set[int] = set()
    while len(taken) < n:
        for j in turns:
            while int(ranks[cursor[j], j]) in seen:
                cursor[j] += 1
            doc = int(ranks[cursor[j], j])
            seen.add(doc)
            taken.append(doc)
            if len(taken) == n:
                break
    return _selection(ctx, taken, started)


def dsir(ctx: Context, budget: float, seed: int) -> Selection:
    """``data_selection.HashedNgramDSIR`` with its defaults, sampling the budget's number of documents."""
    from data_selection import HashedNgramDSIR

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=ctx.work_dir) as tmp:
        target = Path(tmp) / "target.jsonl"
        with target.open("w") as f:
            for line in ctx.reward_reference.read_text().splitlines():
                row = json.loads(line)
                f.write(json.dumps({"text": f"{row.get('question', '')}\n{row.get('answer', '')}"}) + "\n")
        np.random.seed(seed)  # DSIR samples with numpy's global generator
        # its defaults (2-grams, 10,000 buckets, documents of at least 100 tokens), one process
        selector = HashedNgramDSIR([str(ctx.corpus)], [str(target)], cache_dir=str(Path(tmp) / "cache"), num_proc=1)
        selector.fit_importance_estimator(num_tokens_to_fit="auto")
        selector.compute_importance_weights()
        selector.resample(out_dir=str(Path(tmp) / "out"), num_to_sample=_n_documents(ctx, budget),
                          cache_dir=str(Path(tmp) / "resample"))
        ids = [json.loads(line)["id"] for file in sorted((Path(tmp) / "out").glob("*.jsonl"))
               for line in file.read_text().splitlines() if line.strip()]
    return Selection(ids, ctx.pairs_of(ids), time.perf_counter() - started)


def all_documents(ctx: Context, budget: float, seed: int) -> Selection:
    """Every document: the cost EQUAL is meant to save."""
    ids = [r["id"] for r in ctx.rows]
    return Selection(ids, ctx.pairs_of(ids), 0.0)


STRATEGIES: dict[str, Strategy] = {
    "EQUAL": pipeline({}),
    "EQUAL + alignment": pipeline({"alignment.enabled": True}),
    # the run's own selection strategies (equal.run.strategies), chosen by name
    "EQUAL, paper settings": pipeline({"bandit.selection": "paper"}),
    "random documents": pipeline({"bandit.selection": "random"}),
    "random clusters": pipeline({"bandit.selection": "random-clusters"}),
    "avg-sim top-k": avg_sim_top_k,
    "avg-sim top-k, deduplicated": avg_sim_top_k_deduplicated,
    "round-robin similarity": round_robin_similarity,
    "DSIR": dsir,
    "all": all_documents,
}
#: what each of our changes to the paper's design is worth: EQUAL's defaults with one thing changed
#: (`equal bench --ablation`; docs/benchmarks.md has the table)
ABLATIONS: dict[str, Strategy] = {
    "EQUAL, random warm-up": pipeline({"warmup.selection": "random"}),
    "EQUAL, similarity warm-up": pipeline({"warmup.selection": "reference"}),
    "EQUAL, random order in clusters": pipeline({"bandit.document_order": "random"}),
    "EQUAL, no similarity prior": pipeline({"bandit.similarity_prior": False}),
    "EQUAL, no warm-up prior": pipeline({"warmup.as_prior": False}),
    "EQUAL, no priors": pipeline({"warmup.as_prior": False, "bandit.similarity_prior": False}),
    "EQUAL, warm-up 20%": pipeline({"warmup.fraction_of_budget": 0.2}),
    "EQUAL, alpha auto": pipeline({"bandit.alpha": "auto"}),
    "EQUAL, paper B=50 m=10": pipeline({"bandit.clusters_per_round": 50, "bandit.docs_per_pull": 10}),
    "EQUAL, paper + priors": pipeline({"warmup.selection": "random", "bandit.document_order": "random"}),
}
STRATEGIES.update(ABLATIONS)
#: EQUAL with another reward or exploration (docs/reward.md): what only extraction reveals, coverage of the task,
#: and exploration that is not accidental
REWARDS: dict[str, Strategy] = {
    "EQUAL, quality reward": pipeline({"reward.kind": "quality"}),
    "EQUAL, coverage reward": pipeline({"reward.kind": "coverage"}),
    "EQUAL, Thompson sampling": pipeline({"bandit.policy": "thompson", "bandit.alpha": "auto"}),
    "EQUAL, coverage reward, Thompson sampling": pipeline({"reward.kind": "coverage", "bandit.policy": "thompson",
                                                           "bandit.alpha": "auto"}),
}
STRATEGIES.update(REWARDS)
#: what `equal bench` runs unless told otherwise (alignment fine-tunes MiniLM in every run: slow)
DEFAULT = [s for s in STRATEGIES if s not in ABLATIONS and s not in REWARDS and s != "EQUAL + alignment"]
#: strategies whose result does not depend on the budget (run once per seed)
BUDGET_FREE = {"all"}


def pipeline_overrides(name: str) -> dict[str, Any]:
    """The config overrides of strategy ``name``, one that runs the pipeline.

    Raises:
        InputError: no such strategy, or one that does not run the pipeline (``avg-sim top-k``, ``DSIR``, ``all``).
    """
    strategy = STRATEGIES.get(name)
    if not isinstance(strategy, PipelineStrategy):
        runs = [other for other, known in STRATEGIES.items() if isinstance(known, PipelineStrategy)]
        raise InputError(f"{name!r} is not a strategy that runs the pipeline; choose from {runs}")
    return dict(strategy.overrides)

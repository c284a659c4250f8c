"""The EQUAL run: the one place that knows every phase, read top to bottom.

read -> embed -> warm-up extraction -> (alignment) -> cluster -> reward the
warm-up -> arms and priors -> bandit rounds (select, extract, reward, share)
-> write the data set, documents, clusters, logs and stats.

Each phase is a function of the run's :class:`~equal.run.context.RunContext`
(config, directory, counters, progress, random generator, caches) and of the
values the phases before it returned; the selection strategy (``bandit.selection``, :mod:`equal.run.strategies`) is
where strategies differ. A run is deterministic for a given config and seed,
every LLM answer is in the response cache and every embedding in the
embedding cache, so running the same command again after a crash replays
what was done at no cost and continues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from equal.alignment import require_alignment_extra
from equal.bandit import ClusterArms, OrderContext, RoundShape
from equal.config import RunConfig, dump_config
from equal.embedding import Embedder, EmbeddingCache
from equal.errors import InputError
from equal.extraction.extractor import Extractor
from equal.extraction.pending import Pending
from equal.progress import ItemCount, NullProgress, Progress, Task
from equal.records import Extraction, Pull, QAPair
from equal.run.alignment import align
from equal.run.budget import Budget
from equal.run.builders import build_extractor, build_llm, pair_embedding
from equal.run.clusters import Clusters
from equal.run.context import RunContext
from equal.run.directory import CONFIG, claim_run_dir, is_finished, mark_unfinished
from equal.run.embedders import Embedders, EmbeddingSpace
from equal.run.extract import ExtractStep, decontamination_index
from equal.run.inputs import RunInputs, embed_inputs, read_corpus_and_reference
from equal.run.lock import RunDirLock
from equal.run.quality import grade_counts, improve_pairs
from equal.run.rewards import Reward, build_reward
from equal.run.rounds import PlayedRound, play_rounds
from equal.run.schema import Paid, RoundLog, RunStats, Summary, read_stats, round_log
from equal.run.scoring import PairDistance
from equal.run.strategies import SelectionStrategy, build_strategy
from equal.run.warmup import Warmup, rewards_of, run_warmup, warmup_pulls, warmup_size
from equal.run.writer import cluster_records, document_records, round_record, with_provenance, write_run
from equal.stats import Stats

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a finished run produced.

    Attributes:
        run_dir: the run directory.
        dataset_path: the data set written there.
        pairs: the data set's pairs, each with its provenance.
        pulls: every pull, the warm-up's pseudo-pulls (round -1) first.
        counters: every counter of ``stats.json``.
        summary: the summary of ``stats.json``.
        selected_documents: the ids of the documents extracted, in order.
    """

    run_dir: Path
    dataset_path: Path
    pairs: list[QAPair]
    pulls: list[Pull]
    counters: dict[str, int | float]
    summary: Summary
    selected_documents: list[str] = field(default_factory=list)


def run(config: RunConfig, *, progress: Progress | None = None, embedder: Embedder | None = None,
        extractor: Extractor | None = None) -> RunResult:
    """Run EQUAL for ``config`` and return what it wrote.

    Args:
        config: the validated run configuration.
        progress: where long phases report progress (the CLI passes rich bars).
        embedder: overrides ``config.embedding`` (e.g. an already loaded model).
        extractor: overrides ``config.extraction``.

    Raises:
        ConfigError: the configuration cannot run (missing inputs, a refused
            ``output.dir``, settings that do not fit the corpus).
        InputError: a corpus or reference file cannot be used.
        RunLocked: another process runs in the same directory.
    """
    config.require_inputs()
    ctx = RunContext.start(config, progress or NullProgress())
    claim_run_dir(ctx.run_dir)  # refuses a directory holding the user's own files
    with RunDirLock(ctx.run_dir):
        earlier = _paid_before(ctx.run_dir)  # what finished runs here paid, before their stats.json goes
        # a rerun rewrites config.yaml and rounds.jsonl first: from here the directory reads as unfinished
        mark_unfinished(ctx.run_dir)
        return _run(ctx, embedder, extractor, earlier)


def _paid_before(run_dir: Path) -> Paid | None:
    """What the finished runs in ``run_dir`` paid for their answers; ``None`` when none finished there."""
    if not is_finished(run_dir):
        return None
    try:
        return read_stats(run_dir).paid
    except InputError as exc:  # a damaged stats.json: the run goes on, only the history is lost
        logger.warning("the cost of earlier runs in %s is not kept: %s", run_dir, exc)
        return None


@dataclass(frozen=True, slots=True)
class _BanditStart:
    """What the bandit knows before its first pull.

    Attributes:
        arms: the clusters and their documents in pull order, primed with what is known at no LLM cost.
        warm_pulls: the warm-up cut into pseudo-pulls (round -1), rewarded.
        offset: the calibrated reward offset.
        alpha: the exploration weight.
        reward: rewards each bandit pull, in order.
    """

    arms: ClusterArms
    warm_pulls: list[Pull]
    offset: float
    alpha: float
    reward: Reward


def _run(ctx: RunContext, embedder: Embedder | None, extractor: Extractor | None, earlier: Paid | None) -> RunResult:
    started = time.monotonic()
    config, stats = ctx.config, ctx.stats
    dump_config(config, ctx.run_dir / CONFIG)
    strategy = build_strategy(config)
    if strategy.aligns:  # before the warm-up is paid for, not after
        require_alignment_extra()
    with ExitStack() as closing:
        cache = EmbeddingCache(ctx.caches.embeddings)
        closing.callback(cache.close)
        embedders = Embedders.build(config.embedding, config.executor, embedder)
        with stats.timed("read inputs"):
            documents, reference = read_corpus_and_reference(ctx)
        extractor = extractor or build_extractor(config.extraction, ctx.caches, stats, config.seed, config.executor,
                                                 pair_embedding(config.embedding, config.executor, cache), reference)
        closing.callback(extractor.close)
        extract = ExtractStep(extractor, documents, decontamination_index(config.decontamination, reference), stats,
                              config.corpus.label_field)
        with stats.timed("embed inputs"):
            inputs = embed_inputs(ctx, documents, reference, embedders, cache)
        budget = Budget.from_settings(len(documents), config.budget.fraction, config.budget.llm_calls,
                                      config.budget.tokens)
        document_budget = int(min(budget.documents_left(), len(documents)))
        with stats.timed("warm-up"):
            warmup, budget = run_warmup(warmup_size(document_budget, len(documents), config.warmup),
                                        strategy.warmup, inputs.similarity, extract, budget, ctx.rng, ctx.progress,
                                        stats)
        space = _embedding_space(ctx, strategy, embedders, inputs, warmup, cache)
        with stats.timed("cluster"):
            clusters = strategy.clusters(space.documents, ctx.progress, stats)
        shape = strategy.shape(document_budget - len(warmup.documents), clusters)
        with stats.timed("priors"):
            start = _bandit_start(ctx, strategy, space, inputs, clusters, warmup, shape, cache)
        pulls, budget = _play(ctx, strategy, start, shape, extract, budget)
        if cache.damaged_rows:  # single rows that were no vectors: embedded again (warned as they were found)
            stats.inc("embedding_cache_damaged_rows", cache.damaged_rows)
        every_pull = start.warm_pulls + pulls
        with stats.timed("quality"), ctx.progress.task("grading pairs", total=None):
            pairs, budget = improve_pairs(
                ctx, with_provenance(every_pull, inputs.documents, clusters.labels, config.corpus.label_field),
                inputs.reference, budget, extract.decontamination, extract.removed,
                lambda: build_llm(config.quality.llm or config.extraction, stats, config.seed))
        return _write_outputs(ctx, inputs, clusters, shape, warmup, start, every_pull, pairs, extract, budget,
                              started, earlier)


def _embedding_space(ctx: RunContext, strategy: SelectionStrategy, embedders: Embedders, inputs: RunInputs,
                     warmup: Warmup, cache: EmbeddingCache) -> EmbeddingSpace:
    """The space the run clusters and rewards in: the inputs' own, or, for a strategy that aligns, the aligned
    embedder's."""
    space = EmbeddingSpace(embedders, inputs.document_vectors, inputs.reference_vectors)
    if not strategy.aligns:
        return space
    with ctx.stats.timed("align"):
        return align(ctx, space, inputs, warmup, cache)


def _bandit_start(ctx: RunContext, strategy: SelectionStrategy, space: EmbeddingSpace, inputs: RunInputs,
                  clusters: Clusters, warmup: Warmup, shape: RoundShape, cache: EmbeddingCache) -> _BanditStart:
    """The reward scale, the warm-up's rewards and the priors, before the first pull."""
    distance = PairDistance(space, cache, ctx.config.reward, ctx.progress, ctx.stats)
    reward = build_reward(ctx.config.reward, distance, inputs.reference, ctx.config.seed, ctx.stats)
    warm_pulls, offset = warmup_pulls(warmup, shape.docs_per_pull, reward, ctx.config.reward.offset)
    warm_rewards = rewards_of(warm_pulls)
    alpha = strategy.alpha(warm_rewards)
    arms = strategy.arms(clusters, OrderContext(space.documents, clusters.centroids, inputs.similarity),
                         warmup.documents, ctx.rng)
    primed = strategy.prime(arms, clusters, inputs.similarity, warm_rewards, warmup.documents, warmup.pairs,
                            reward.prior)
    if primed:
        ctx.stats.inc("warmup_priors", primed)
    return _BanditStart(arms, warm_pulls, offset, alpha, reward)


def _play(ctx: RunContext, strategy: SelectionStrategy, start: _BanditStart, shape: RoundShape,
          extract: ExtractStep, budget: Budget) -> tuple[list[Pull], Budget]:
    """The bandit rounds, each written to ``rounds.jsonl`` as it ends; the rounds' bar moves per document."""
    left = budget.documents_left()
    total = min(int(left) if np.isfinite(left) else start.arms.remaining(), start.arms.remaining())
    with round_log(ctx.run_dir) as log, ctx.progress.task("bandit rounds (documents)", total=total) as task:
        with ctx.stats.timed("rounds"):
            pulls, budget = play_rounds(
                start.arms, strategy.policy(start.alpha), budget, shape=shape, extract=extract,
                submit=lambda indices: _submit_moving(extract, task, indices),
                rounds_in_flight=ctx.config.bandit.rounds_in_flight, reward=start.reward, rng=ctx.rng,
                on_round=lambda played, so_far: _record_round(log, task, played, so_far), timed=ctx.stats.timed)
    ctx.stats.inc("rounds", len({p.round for p in pulls}))
    return pulls, budget


def _write_outputs(ctx: RunContext, inputs: RunInputs, clusters: Clusters, shape: RoundShape, warmup: Warmup,
                   start: _BanditStart, every_pull: list[Pull], pairs: list[QAPair], extract: ExtractStep,
                   budget: Budget, started: float, earlier: Paid | None) -> RunResult:
    """The data set (``pairs``, graded), documents, centroids, logs and, last, ``stats.json`` (the wall time
    counted from ``started``); what the run produced."""
    stats, label_field = ctx.stats, ctx.config.corpus.label_field
    documents = inputs.documents
    stats.inc("pairs_written", len(pairs))
    stats.update(grade_counts(pairs))
    selected = [d for p in every_pull for d in p.document_ids]
    wall_seconds = round(time.monotonic() - started, 2)
    this_run = Paid.of_attempt(stats.as_dict(), wall_seconds)
    summary = Summary(
        corpus_passages=len(documents), reference_examples=len(inputs.reference), clusters=clusters.k,
        clusters_per_round=shape.clusters_per_round, docs_per_pull=shape.docs_per_pull,
        warmup_documents=len(warmup.documents), reward_offset=start.offset, alpha=start.alpha,
        documents_extracted=len(selected), tokens_spent=budget.tokens, wall_seconds=wall_seconds,
        # derived from the counters the extraction keeps, so the two can never disagree
        extracted_by_label=_by_label(stats) if label_field else None,
        paid=this_run if earlier is None else earlier + this_run, stage_seconds=stats.seconds(),
    )
    with ctx.progress.task("writing dataset and logs", total=None):
        dataset_path = write_run(
            ctx.run_dir, pairs=pairs, dataset_format=ctx.config.output.format,
            documents=document_records(every_pull, documents, clusters.labels, label_field),
            centroids=clusters.centroids, failures=extract.failures, removed=extract.removed,
            clusters=cluster_records(start.arms), stats=RunStats(stats.as_dict(), summary),
        )
    logger.info("run finished: %d pairs from %d documents in %s", len(pairs), len(selected), ctx.run_dir)
    return RunResult(ctx.run_dir, dataset_path, pairs, every_pull, stats.as_dict(), summary, selected)


def _submit_moving(extract: ExtractStep, task: Task, indices: Sequence[int]) -> Pending[Extraction]:
    """Send a round's extraction; the rounds' bar moves by one document as each answer arrives."""
    count = ItemCount(task, len(indices))
    pending = extract.submit(indices, count.done)

    def finish(start: int, stop: int, extractions: list[Extraction]) -> list[Extraction]:
        if stop == len(indices):  # what was not reported (cache hits, an extractor that does not report)
            count.finish()
        return extractions
    return pending.then(finish)


def _record_round(log: RoundLog, task: Task, played: PlayedRound, pulls: Sequence[Pull]) -> None:
    """After each round: its line in ``rounds.jsonl`` and a note under the progress bar."""
    log.write(round_record(played))
    task.note(f"round {played.round} | {played.budget.documents} calls, {played.budget.tokens:,} tokens, "
              f"{sum(len(p.pairs) for p in pulls)} pairs | best clusters {played.best_clusters[:3]}")


def _by_label(stats: Stats) -> dict[str, int]:
    """Documents extracted per label, from the ``extracted_label:*`` counters."""
    prefix = "extracted_label:"
    return {k.removeprefix(prefix): int(v) for k, v in stats.as_dict().items() if k.startswith(prefix)}

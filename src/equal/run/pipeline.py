"""The EQUAL run: the one place that knows every phase, read top to bottom.

read -> embed -> warm-up extraction -> (alignment) -> cluster -> reward the
warm-up -> arms and priors -> bandit rounds (select, extract, reward, share)
-> write the data set, documents, clusters, logs and stats.

Each phase is a function of the values the phases before it returned; the
selection strategy (``bandit.selection``, :mod:`equal.run.strategies`) is
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
from functools import partial
from pathlib import Path

import numpy as np

from equal.alignment import require_alignment_extra
from equal.bandit import OrderContext
from equal.config import RunConfig, dump_config
from equal.embedding import Embedder, EmbeddingCache
from equal.errors import InputError
from equal.extraction.extractor import Extractor
from equal.extraction.pending import Pending
from equal.progress import ItemCount, NullProgress, Progress, Task
from equal.records import Extraction, Pull, QAPair
from equal.run.alignment import align
from equal.run.budget import Budget
from equal.run.builders import build_extractor, pair_embedding
from equal.run.directory import CONFIG, claim_run_dir, is_finished, mark_unfinished
from equal.run.embedders import Embedders, EmbeddingSpace
from equal.run.extract import ExtractStep, decontamination_index
from equal.run.inputs import embed_inputs, read_corpus_and_reference
from equal.run.lock import RunDirLock
from equal.run.rounds import PlayedRound, play_rounds
from equal.run.schema import Paid, RoundLog, RunStats, Summary, read_stats, round_log
from equal.run.scoring import PairDistance, PullRewarder
from equal.run.strategies import build_strategy
from equal.run.warmup import rewards_of, run_warmup, warmup_pulls, warmup_size
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
    run_dir = Path(config.output.dir)
    claim_run_dir(run_dir)  # refuses a directory holding the user's own files
    with RunDirLock(run_dir):
        earlier = _paid_before(run_dir)  # what finished runs here paid, before their stats.json goes
        # a rerun rewrites config.yaml and rounds.jsonl first: from here the directory reads as unfinished
        mark_unfinished(run_dir)
        return _run(config, run_dir, progress or NullProgress(), embedder, extractor, earlier)


def _paid_before(run_dir: Path) -> Paid | None:
    """What the finished runs in ``run_dir`` paid for their answers; ``None`` when none finished there."""
    if not is_finished(run_dir):
        return None
    try:
        return read_stats(run_dir).paid
    except InputError as exc:  # a damaged stats.json: the run goes on, only the history is lost
        logger.warning("the cost of earlier runs in %s is not kept: %s", run_dir, exc)
        return None


def _run(config: RunConfig, run_dir: Path, progress: Progress, embedder: Embedder | None,
         extractor: Extractor | None, earlier: Paid | None) -> RunResult:
    started = time.monotonic()
    dump_config(config, run_dir / CONFIG)
    stats = Stats()
    strategy = build_strategy(config)
    if strategy.aligns:  # before the warm-up is paid for, not after
        require_alignment_extra()
    cache_dir = config.extraction.cache_dir or run_dir / "cache"
    with ExitStack() as closing:
        cache = EmbeddingCache(cache_dir / "embeddings.sqlite")
        closing.callback(cache.close)
        embedders = Embedders.from_config(config, embedder)
        extractor = extractor or build_extractor(config.extraction, run_dir, stats, config.seed, config.executor,
                                                 pair_embedding(config, cache))
        closing.callback(extractor.close)
        rng = np.random.default_rng(config.seed)

        # inputs, read and embedded once
        with stats.timed("read inputs"):
            documents, reference = read_corpus_and_reference(config, progress, stats)
        extract = ExtractStep(extractor, documents, decontamination_index(config.decontamination, reference), stats,
                              config.corpus.label_field)
        with stats.timed("embed inputs"):
            inputs = embed_inputs(documents, reference, embedders, cache, cache_dir, config, progress)
        budget = Budget.from_settings(len(documents), config.budget.fraction, config.budget.llm_calls,
                                      config.budget.tokens)
        document_budget = int(min(budget.documents_left(), len(documents)))

        # the warm-up, then (optionally) the embedder aligned on it, then the arms
        with stats.timed("warm-up"):
            warmup, budget = run_warmup(warmup_size(document_budget, len(documents), config.warmup),
                                        strategy.warmup, inputs.similarity, extract, budget, rng, progress, stats)
        space = EmbeddingSpace(embedders, inputs.document_vectors, inputs.reference_vectors)
        if strategy.aligns:
            with stats.timed("align"):
                space = align(space, inputs, warmup, config, run_dir, cache, cache_dir, progress, stats)
        with stats.timed("cluster"):
            clusters = strategy.clusters(space.documents, progress, stats)
        shape = strategy.shape(document_budget - len(warmup.documents), clusters)

        # what the bandit knows before its first pull: the reward scale, the warm-up, the priors
        distance = PairDistance(space, cache, config.reward, progress, stats)
        with stats.timed("priors"):
            warm_pulls, offset = warmup_pulls(warmup, shape.docs_per_pull, distance, config.reward.offset)
            warm_rewards = rewards_of(warm_pulls)
            alpha = strategy.alpha(warm_rewards)
            arms = strategy.arms(clusters, OrderContext(space.documents, clusters.centroids, inputs.similarity),
                                 warmup.documents, rng)
            primed = strategy.prime(arms, clusters, inputs.similarity, warm_rewards, warmup.documents,
                                    warmup.pairs, distance.reward(offset))
        if primed:
            stats.inc("warmup_priors", primed)

        # the rounds
        policy = strategy.policy(alpha)
        left = budget.documents_left()
        total = min(int(left) if np.isfinite(left) else arms.remaining(), arms.remaining())
        with round_log(run_dir) as log, progress.task("bandit rounds (documents)", total=total) as task:
            with stats.timed("rounds"):
                pulls, budget = play_rounds(arms, policy, budget, shape=shape, extract=extract,
                                            submit=partial(_submit_moving, extract, task),
                                            rounds_in_flight=config.bandit.rounds_in_flight,
                                            reward=PullRewarder(distance, offset, warm_rewards, stats), rng=rng,
                                            on_round=partial(_record_round, log, task), timed=stats.timed)
        stats.inc("rounds", len({p.round for p in pulls}))
        if cache.damaged_rows:  # single rows that were no vectors: embedded again (warned as they were found)
            stats.inc("embedding_cache_damaged_rows", cache.damaged_rows)

        # the outputs
        every_pull = warm_pulls + pulls
        label_field = config.corpus.label_field
        pairs = with_provenance(every_pull, documents, clusters.labels, label_field)
        stats.inc("pairs_written", len(pairs))
        selected = [d for p in every_pull for d in p.document_ids]
        wall_seconds = round(time.monotonic() - started, 2)
        this_run = Paid.of_attempt(stats.as_dict(), wall_seconds)
        summary = Summary(
            corpus_passages=len(documents), reference_examples=len(reference), clusters=clusters.k,
            clusters_per_round=shape.clusters_per_round, docs_per_pull=shape.docs_per_pull,
            warmup_documents=len(warmup.documents), reward_offset=offset, alpha=alpha,
            documents_extracted=len(selected), tokens_spent=budget.tokens, wall_seconds=wall_seconds,
            # derived from the counters the extraction keeps, so the two can never disagree
            extracted_by_label=_by_label(stats) if label_field else None,
            paid=this_run if earlier is None else earlier + this_run, stage_seconds=stats.seconds(),
        )
        with progress.task("writing dataset and logs", total=None):
            dataset_path = write_run(
                run_dir, pairs=pairs, dataset_format=config.output.format,
                documents=document_records(every_pull, documents, clusters.labels, label_field),
                centroids=clusters.centroids, failures=extract.failures, removed=extract.removed,
                clusters=cluster_records(arms), stats=RunStats(stats.as_dict(), summary),
            )
    logger.info("run finished: %d pairs from %d documents in %s", len(pairs), len(selected), run_dir)
    return RunResult(run_dir, dataset_path, pairs, every_pull, stats.as_dict(), summary, selected)


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

"""The EQUAL run loop: the one place that knows every part.

read -> embed -> warm-up extraction -> (alignment, see issue 3) -> cluster
-> neighbours -> bandit rounds (select, extract, embed pairs, OT reward,
share) -> write dataset, stats and round log.

A run is deterministic for a given config and seed, every LLM answer is in
the response cache and every embedding in the embedding cache, so running
the same command again after a crash replays what was done at no cost and
continues.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from equal.bandit import ClusterArms, build_policy
from equal.clustering import KMeansClusterer, cluster_moments, default_n_clusters, neighbour_lists, w2_diag_distances
from equal.config import RunConfig, dump_config
from equal.corpus import read_documents, read_reference
from equal.embedding import Embedder, EmbeddingCache, embed_cached
from equal.errors import InputError
from equal.extraction.extractor import Extractor
from equal.output import write_dataset
from equal.progress import NullProgress, Progress
from equal.records import Document, Extraction, Pull, QAPair
from equal.reward import auto_offset, ot_distance, reward_from_distance
from equal.run.budget import Budget
from equal.run.builders import build_embedder, build_extractor
from equal.stats import Stats

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    dataset_path: Path
    pairs: list[QAPair]
    pulls: list[Pull]
    stats: dict[str, Any]
    selected_documents: list[str] = field(default_factory=list)


def round_shape(documents: int, n_clusters: int, clusters_per_round: int | str, docs_per_pull: int | str) -> tuple[int, int]:
    """Clusters per round B and documents per pull m.

    ``auto`` aims at about 20 rounds whatever the budget: m = sqrt(D / 10)
    in [1, 10] and B = D / (20 m) in [1, 50], which gives the released B = 50,
    m = 10 at the paper's scale (D = 73,000) and small pulls on small budgets,
    where the paper's values would spend everything in one round.
    """
    d = max(int(documents), 1)
    m = int(np.clip(round(math.sqrt(d / 10)), 1, 10)) if docs_per_pull == "auto" else int(docs_per_pull)
    b = int(np.clip(round(d / (20 * m)), 1, 50)) if clusters_per_round == "auto" else int(clusters_per_round)
    return max(1, min(b, n_clusters)), max(1, m)


class EqualRun:
    """One run of EQUAL for a config; :meth:`run` does the work.

    Args:
        config: the validated run configuration.
        progress: where long stages report progress (the CLI passes rich bars).
        embedder: overrides ``config.embedding`` (e.g. an already loaded model).
        extractor: overrides ``config.extraction``.
    """

    def __init__(self, config: RunConfig, *, progress: Progress | None = None, embedder: Embedder | None = None,
                 extractor: Extractor | None = None) -> None:
        config.require_inputs()
        self.config = config
        self.progress = progress or NullProgress()
        self.run_dir = Path(config.output.dir)
        self.stats = Stats()
        self._embedder = embedder
        self._extractor = extractor

    # -- stages ---------------------------------------------------------------------

    def _read(self) -> tuple[list[Document], list[QAPair]]:
        cfg = self.config
        replay = cfg.extraction.extractor == "replay"
        keep = tuple(f for f in (cfg.corpus.label_field, cfg.extraction.replay_field if replay else None) if f)
        documents = []
        with self.progress.task("reading corpus", total=None) as task:
            for doc in read_documents(
                cfg.corpus.path, text_field=cfg.corpus.text_field, id_field=cfg.corpus.id_field,  # type: ignore[arg-type]
                fmt=cfg.corpus.format, min_chars=cfg.corpus.min_chars, keep_fields=keep, stats=self.stats,
                # stored pairs belong to the whole record, so replay never splits it
                max_passage_chars=None if replay else cfg.corpus.max_passage_chars,
            ):
                documents.append(doc)
                task.advance()
                if cfg.corpus.limit and len(documents) >= cfg.corpus.limit:
                    break
        if len(documents) < 2:
            raise InputError(
                f"the corpus {cfg.corpus.path} yielded {len(documents)} usable documents "
                f"(skips: {self._skips()}); check corpus.text_field and the file's contents"
            )
        reference = read_reference(cfg.reference.path, fmt=cfg.reference.format,  # type: ignore[arg-type]
                                   min_examples=cfg.reference.min_examples, limit=cfg.reference.limit,
                                   stats=self.stats)
        return documents, reference

    def _skips(self) -> str:
        skips = {k: v for k, v in self.stats.as_dict().items() if k.startswith("skipped_")}
        return ", ".join(f"{k}={v}" for k, v in skips.items()) or "none"

    def _embed(self, texts: list[str], description: str) -> np.ndarray:
        return embed_cached(self.embedder, texts, self.embedding_cache, progress=self.progress,
                            description=description)

    def _extract(self, documents: list[Document]) -> list[Extraction]:
        extractions = self.extractor.extract(documents)
        for extraction in extractions:
            if not extraction.parse_ok:
                self._failures.append({"document_id": extraction.document_id, "error": extraction.error,
                                       "raw": extraction.generation.text})
            self.budget.charge(1, extraction.generation.tokens_in + extraction.generation.tokens_out)
        self.stats.inc("documents_extracted", len(documents))
        for doc in documents:
            if self.config.corpus.label_field:
                self.stats.inc(f"extracted_label:{doc.metadata.get(self.config.corpus.label_field)}")
        return extractions

    def _distance(self, pairs: list[QAPair]) -> float | None:
        if not pairs:
            return None
        x = self._embed([p.as_text() for p in pairs], "embedding pairs")
        cfg = self.config.reward
        return ot_distance(x, self.reference_embeddings, cost=cfg.cost, solver=cfg.solver,
                           reg=cfg.sinkhorn_reg).value

    # -- the loop -------------------------------------------------------------------

    def run(self) -> RunResult:
        cfg = self.config
        started = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, self.run_dir / "config.yaml")
        cache_dir = cfg.extraction.cache_dir or self.run_dir / "cache"
        self.embedding_cache = EmbeddingCache(cache_dir / "embeddings.sqlite")
        self.embedder = self._embedder or build_embedder(cfg.embedding)
        self.extractor = self._extractor or build_extractor(cfg.extraction, self.run_dir, self.stats, cfg.seed)
        self._failures: list[dict[str, Any]] = []
        rng = np.random.default_rng(cfg.seed)

        documents, reference = self._read()
        n = len(documents)
        doc_embeddings = self._embed([d.text for d in documents], "embedding documents")
        self.reference_embeddings = self._embed([p.as_text() for p in reference], "embedding reference")
        self.budget = Budget.from_settings(n, cfg.budget.fraction, cfg.budget.llm_calls, cfg.budget.tokens)
        doc_budget = min(self.budget.documents_left(), n)

        # Warm-up: a random sample, extracted first; it sets the reward offset and its pairs are kept.
        n_warm = int(min(doc_budget, n - 1, max(cfg.warmup.min_documents,
                                                round(cfg.warmup.fraction_of_budget * doc_budget))))
        warm_idx = [int(i) for i in rng.choice(n, size=n_warm, replace=False)] if n_warm else []
        with self.progress.task("warm-up extraction", total=n_warm) as task:
            warm_extractions = []
            for start in range(0, n_warm, 8):  # small batches so progress moves
                warm_extractions += self._extract([documents[i] for i in warm_idx[start:start + 8]])
                task.advance(min(8, n_warm - start))

        # Clusters (a single arm holding every document when selection is random).
        if cfg.bandit.selection == "random":
            k, labels = 1, np.zeros(n, dtype=np.int64)
            neighbours = [np.array([0])]
            centroids = doc_embeddings.mean(0, keepdims=True)
        else:
            k = default_n_clusters(n) if cfg.clustering.k == "auto" else int(cfg.clustering.k)
            with self.progress.task(f"k-means, k={k}", total=None):
                km = KMeansClusterer(k, n_iter=cfg.clustering.iterations, random_state=cfg.seed).fit(doc_embeddings)
            labels, centroids = km.labels_, km.centroids_
            mu, sigma = cluster_moments(doc_embeddings, labels, k)
            neighbours = neighbour_lists(w2_diag_distances(mu, sigma),
                                         threshold=cfg.clustering.neighbour_threshold,
                                         quantile=cfg.clustering.neighbour_quantile)
        self.stats.inc("clusters", k)
        b, m = round_shape(doc_budget - n_warm, k, cfg.bandit.clusters_per_round, cfg.bandit.docs_per_pull)
        if cfg.bandit.selection == "random":
            b, m = 1, b * m  # the same documents per round, drawn from the whole corpus

        # Reward offset from the warm-up, in pseudo-pulls of m documents.
        warm_pulls: list[Pull] = []
        for start in range(0, n_warm, m):
            chunk = warm_extractions[start:start + m]
            pairs = [p for e in chunk for p in e.pairs]
            warm_pulls.append(Pull(-1, -1, [e.document_id for e in chunk], pairs, self._distance(pairs), 0.0))
        offset = auto_offset([p.distance for p in warm_pulls if p.distance is not None]) \
            if cfg.reward.offset == "auto" else float(cfg.reward.offset)
        seen_rewards = []
        for pull in warm_pulls:
            if pull.distance is not None:
                pull.reward = reward_from_distance(pull.distance, offset)
                seen_rewards.append(pull.reward)

        # Arms: each cluster's documents not used by the warm-up, in the chosen order.
        open_docs = np.ones(n, dtype=bool)
        open_docs[warm_idx] = False
        by_label = np.argsort(labels, kind="stable")
        by_label = by_label[open_docs[by_label]]
        members = []
        for c, idx in enumerate(np.split(by_label, np.cumsum(np.bincount(labels[by_label], minlength=k))[:-1])):
            if cfg.bandit.document_order == "centroid" and len(idx):
                idx = idx[np.argsort(((doc_embeddings[idx] - centroids[c]) ** 2).sum(1), kind="stable")]
            else:
                idx = rng.permutation(idx)
            members.append(idx)
        arms = ClusterArms(members, neighbours)
        policy = build_policy(cfg.bandit.policy, cfg.bandit.alpha, cfg.bandit.alpha_schedule)

        pulls: list[Pull] = []
        rounds_path = self.run_dir / "rounds.jsonl"
        with rounds_path.open("w") as rounds_log, \
                self.progress.task("bandit rounds", total=int(doc_budget - n_warm)) as task:
            round_no = 0
            while not self.budget.exhausted() and arms.available().any():
                left = self.budget.documents_left()
                chosen = policy.select(arms, b, rng)
                plan = []
                for c in chosen:
                    take = int(min(m, left))
                    if take <= 0:
                        break
                    docs = arms.take(c, take)
                    left -= len(docs)
                    plan.append((c, docs))
                if not plan:
                    break
                extractions = self._extract([documents[i] for _, docs in plan for i in docs])
                cursor = 0
                round_pulls = []
                for c, docs in plan:
                    chunk = extractions[cursor:cursor + len(docs)]
                    cursor += len(docs)
                    pairs = [p for e in chunk for p in e.pairs]
                    distance = self._distance(pairs)
                    if distance is None:  # no pair: the lowest reward seen so far
                        reward = min(seen_rewards) if seen_rewards else -1.0
                        self.stats.inc("pulls_without_pairs")
                    else:
                        reward = reward_from_distance(distance, offset)
                    seen_rewards.append(reward)
                    pull = Pull(round_no, c, [documents[i].id for i in docs], pairs, distance, reward)
                    round_pulls.append(pull)
                for pull in round_pulls:  # rewards are shared after the round, as in the released script
                    arms.share(pull.cluster, pull.reward)
                pulls += round_pulls
                best = np.argsort(-arms.mean_reward(), kind="stable")[:5]
                rounds_log.write(json.dumps({
                    "round": round_no,
                    "pulls": [{"cluster": p.cluster, "documents": p.document_ids, "pairs": len(p.pairs),
                               "distance": p.distance, "reward": p.reward} for p in round_pulls],
                    "documents_spent": self.budget.documents, "tokens_spent": self.budget.tokens,
                    "best_clusters": [int(c) for c in best],
                }) + "\n")
                rounds_log.flush()
                task.advance(sum(len(p.document_ids) for p in round_pulls))
                task.note(f"round {round_no}: {sum(len(p.pairs) for p in round_pulls)} pairs, "
                          f"best clusters {[int(c) for c in best[:3]]}")
                round_no += 1
        self.stats.inc("rounds", round_no)

        # Output: every pair paid for, warm-up included, with provenance.
        label_field = cfg.corpus.label_field
        by_id = {d.id: d for d in documents}
        cluster_of = {documents[i].id: int(labels[i]) for i in range(n)}
        output_pairs: list[QAPair] = []
        for stage, group in (("warmup", warm_pulls), ("bandit", pulls)):
            for pull in group:
                for pair in pull.pairs:
                    doc = by_id[pair.document_id]
                    pair.metadata.update({
                        "source_id": doc.source_id, "cluster": cluster_of[pair.document_id], "round": pull.round,
                        "pull_reward": round(pull.reward, 6), "stage": stage,
                    })
                    if label_field:
                        pair.metadata["label"] = doc.metadata.get(label_field)
                    output_pairs.append(pair)
        dataset_path = write_dataset(output_pairs, self.run_dir, cfg.output.format)
        self.stats.inc("pairs_written", len(output_pairs))
        with (self.run_dir / "parse_failures.jsonl").open("w") as f:
            for failure in self._failures:
                f.write(json.dumps(failure, ensure_ascii=False) + "\n")
        self._write_arms(arms, k)
        selected = [d for p in warm_pulls + pulls for d in p.document_ids]
        summary = {
            "corpus_passages": n, "reference_examples": len(reference), "clusters": k,
            "clusters_per_round": b, "docs_per_pull": m, "warmup_documents": n_warm,
            "reward_offset": offset, "documents_extracted": len(selected),
            "tokens_spent": self.budget.tokens, "wall_seconds": round(time.monotonic() - started, 2),
        }
        if label_field:
            labels_count: dict[str, int] = {}
            for doc_id in selected:
                key = str(by_id[doc_id].metadata.get(label_field))
                labels_count[key] = labels_count.get(key, 0) + 1
            summary["extracted_by_label"] = labels_count
        self.stats.save(self.run_dir / "stats.json", {"summary": summary})
        self.extractor.close()
        self.embedding_cache.close()
        logger.info("run finished: %d pairs from %d documents in %s", len(output_pairs), len(selected), self.run_dir)
        return RunResult(self.run_dir, dataset_path, output_pairs, warm_pulls + pulls,
                         json.loads((self.run_dir / "stats.json").read_text()), selected)

    def _write_arms(self, arms: ClusterArms, k: int) -> None:
        mean = arms.mean_reward()
        rows = [{"cluster": c, "size": int(arms.sizes[c]), "pulls": int(arms.pulls[c]),
                 "count": float(arms.count[c]), "mean_reward": float(mean[c]),
                 "neighbours": [int(j) for j in arms.neighbours[c]]} for c in range(k)]
        (self.run_dir / "clusters.json").write_text(json.dumps(rows, indent=1))


def run(config: RunConfig, *, progress: Progress | None = None, embedder: Embedder | None = None,
        extractor: Extractor | None = None) -> RunResult:
    """Run EQUAL for ``config`` and return what it wrote. See :class:`EqualRun`."""
    return EqualRun(config, progress=progress, embedder=embedder, extractor=extractor).run()

"""The EQUAL run loop: the one place that knows every part.

read -> embed -> warm-up extraction -> (alignment, docs/alignment.md) -> cluster
-> neighbours -> bandit rounds (select, extract, embed pairs, OT reward,
share) -> write dataset, stats and round log.

A run is deterministic for a given config and seed, every LLM answer is in
the response cache and every embedding in the embedding cache, so running
the same command again after a crash replays what was done at no cost and
continues.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from equal.bandit import ClusterArms, build_policy
from equal.clustering import KMeansClusterer, cluster_moments, default_n_clusters, neighbour_lists, w2_diag_distances
from equal.config import RunConfig, dump_config
from equal.corpus import read_documents, read_reference
from equal.embedding import Embedder, EmbeddingCache, SentenceTransformerEmbedder, embed_cached, normalize
from equal.embedding.store import embed_to_store, store_path
from equal.errors import ConfigError, InputError
from equal.extraction.extractor import Extractor
from equal.files import atomic_file, atomic_write_jsonl, atomic_write_text
from equal.filters import NgramIndex
from equal.output import write_dataset
from equal.progress import NullProgress, Progress
from equal.records import Document, Extraction, Pull, QAPair
from equal.reward import auto_offset, ot_distance, reward_from_distance
from equal.run.budget import Budget
from equal.run.builders import build_embedder, build_extractor, corpus_embedder
from equal.run.directory import FINISHED, claim_run_dir, mark_unfinished
from equal.run.lock import RunDirLock
from equal.stats import Stats

logger = logging.getLogger(__name__)

DOCUMENT_SNIPPET_CHARS = 600  # of each extracted document, kept in documents.jsonl for the report


@dataclass
class Clusters:
    """The cluster structure the bandit plays on."""

    k: int
    labels: np.ndarray  # (n,) int64
    centroids: np.ndarray  # (k, d) float32
    neighbours: list[np.ndarray]  # per cluster, the clusters sharing its rewards (itself included)


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    dataset_path: Path
    pairs: list[QAPair]
    pulls: list[Pull]
    stats: dict[str, Any]
    selected_documents: list[str] = field(default_factory=list)


def round_shape(documents: int, n_clusters: int, clusters_per_round: int | str,
                docs_per_pull: int | str) -> tuple[int, int]:
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
                fmt=cfg.corpus.format, min_chars=cfg.corpus.min_chars,
                max_document_chars=cfg.corpus.max_document_chars, keep_fields=keep, stats=self.stats,
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

    def _embed(self, texts: list[str], description: str, embedder: Embedder | None = None) -> np.ndarray:
        # a bar only for large batches: a pull's few pairs would add one line per round
        progress = self.progress if len(texts) > 256 else None
        return embed_cached(embedder or self.embedder, texts, self.embedding_cache, progress=progress,
                            description=description)

    def _decontamination_index(self) -> NgramIndex | None:
        """The n-grams no output pair may copy: the reference set's and each named eval set's."""
        cfg = self.config.decontamination
        if not cfg.enabled:
            return None
        protected = list(self.reference) if cfg.against_reference else []
        for path in cfg.eval_sets:
            protected += read_reference(path, min_examples=1)
        return NgramIndex((t for p in protected for t in (p.question, p.answer)), n=cfg.ngram)

    def _decontaminate(self, extraction: Extraction) -> None:
        # before the reward: a copied reference pair would otherwise earn its cluster a near-perfect reward
        if self.decontamination is None:
            return
        kept = []
        for pair in extraction.pairs:
            if self.decontamination.overlaps(pair.question) or self.decontamination.overlaps(pair.answer):
                self.stats.inc("pairs_decontaminated")
                self._removed.append({"document_id": pair.document_id, "question": pair.question,
                                      "answer": pair.answer, "reason": f"{self.decontamination.n}-gram overlap"})
            else:
                kept.append(pair)
        extraction.pairs = kept

    def _embed_documents(self, description: str) -> np.ndarray:
        """The corpus's vectors, in a memory-mapped store under the cache directory (resumable)."""
        texts = [d.text for d in self.documents]
        path = store_path(self.cache_dir, self.corpus_embedder.name, texts)
        # a Ray job has a fixed start-up cost: give the cluster larger chunks
        chunk = 65_536 if self.config.executor.kind == "ray" else 4_096
        return embed_to_store(self.corpus_embedder, texts, path, chunk_size=chunk, progress=self.progress,
                              description=description)

    def _extract(self, documents: list[Document]) -> list[Extraction]:
        extractions = self.extractor.extract(documents)
        for extraction in extractions:
            self._decontaminate(extraction)
            if not extraction.parse_ok:
                self._failures.append({"document_id": extraction.document_id, "error": extraction.error,
                                       "raw": extraction.generation.text})
            self.budget.charge(1, extraction.generation.tokens_in + extraction.generation.tokens_out)
        self.stats.inc("documents_extracted", len(documents))
        label_field = self.config.corpus.label_field
        if label_field:
            for doc in documents:
                self.stats.inc(f"extracted_label:{doc.metadata.get(label_field)}")
        return extractions

    def _distance(self, pairs: list[QAPair]) -> float | None:
        if not pairs:
            return None
        x = self._embed([p.as_text() for p in pairs], "embedding pairs", self.pair_embedder)
        cfg = self.config.reward
        return ot_distance(x, self.reference_embeddings, cost=cfg.cost, solver=cfg.solver,
                           reg=cfg.sinkhorn_reg).value

    # -- the loop -------------------------------------------------------------------

    def run(self) -> RunResult:
        claim_run_dir(self.run_dir)  # refuses a directory holding the user's own files
        with RunDirLock(self.run_dir):
            # a rerun rewrites config.yaml and rounds.jsonl first: from here the directory reads as unfinished
            mark_unfinished(self.run_dir)
            return self._run()

    def _run(self) -> RunResult:
        cfg = self.config
        started = time.monotonic()
        dump_config(cfg, self.run_dir / "config.yaml")
        self.cache_dir = cfg.extraction.cache_dir or self.run_dir / "cache"
        self.embedding_cache = EmbeddingCache(self.cache_dir / "embeddings.sqlite")
        self.embedder = self._embedder or build_embedder(cfg.embedding)
        self.corpus_embedder = corpus_embedder(partial(build_embedder, cfg.embedding), self.embedder.name,
                                               cfg.executor) if self._embedder is None else self._embedder
        self.pair_embedder = self.embedder  # embeds pairs and reference for the reward
        self.extractor = self._extractor or build_extractor(cfg.extraction, self.run_dir, self.stats, cfg.seed,
                                                            cfg.executor)
        self._failures: list[dict[str, Any]] = []
        self._removed: list[dict[str, Any]] = []
        self.rng = np.random.default_rng(cfg.seed)
        try:
            self.documents, self.reference = self._read()
            reference = self.reference
            self.decontamination = self._decontamination_index()
            n = len(self.documents)
            doc_embeddings = self._embed_documents("embedding documents")
            self.reference_embeddings = self._embed([p.as_text() for p in reference], "embedding reference")
            # base-model similarity of each document to the reference centroid (used by the similarity prior)
            doc_reference_sim = doc_embeddings @ normalize(self.reference_embeddings.mean(0, keepdims=True))[0]
            self.budget = Budget.from_settings(n, cfg.budget.fraction, cfg.budget.llm_calls, cfg.budget.tokens)
            doc_budget = int(min(self.budget.documents_left(), n))

            # similarity-led choices are EQUAL's; the random-documents baseline stays random throughout
            informed = cfg.bandit.selection == "equal"
            warm_idx, warm_extractions, n_warm_top = self._warmup(
                doc_budget, doc_reference_sim, cfg.warmup.selection if informed else "random")
            if cfg.alignment.enabled and informed:
                doc_embeddings = self._align(warm_idx, warm_extractions, doc_embeddings)
            clusters = self._cluster(doc_embeddings)
            b, m = round_shape(doc_budget - len(warm_idx), clusters.k, cfg.bandit.clusters_per_round,
                               cfg.bandit.docs_per_pull)
            if cfg.bandit.selection == "random":
                b, m = 1, b * m  # the same documents per round, drawn from the whole corpus
            warm_pulls, offset = self._warmup_rewards(warm_extractions, m, n_warm_top)
            warm_rewards = [p.reward for p in warm_pulls if p.distance is not None]
            alpha = self._alpha(warm_rewards)
            arms = self._arms(clusters, doc_embeddings, doc_reference_sim, warm_idx,
                              cfg.bandit.document_order if informed else "random")
            if cfg.bandit.similarity_prior and informed:
                self._similarity_priors(arms, clusters.labels, doc_reference_sim, warm_rewards)
            if cfg.warmup.as_prior and informed:
                self._warmup_priors(arms, clusters.labels, warm_idx, warm_extractions, offset)
            pulls = self._bandit(arms, b, m, offset, alpha, list(warm_rewards))

            pairs = self._provenance(warm_pulls, pulls, clusters.labels)
            self.stats.inc("pairs_written", len(pairs))
            selected = [d for p in warm_pulls + pulls for d in p.document_ids]
            summary: dict[str, Any] = {
                "corpus_passages": n, "reference_examples": len(reference), "clusters": clusters.k,
                "clusters_per_round": b, "docs_per_pull": m, "warmup_documents": len(warm_idx),
                "reward_offset": offset, "alpha": alpha, "documents_extracted": len(selected),
                "tokens_spent": self.budget.tokens, "wall_seconds": round(time.monotonic() - started, 2),
            }
            if cfg.corpus.label_field:
                # derived from the counters _extract keeps, so the two can never disagree
                summary["extracted_by_label"] = {k.split(":", 1)[1]: v for k, v in self.stats.as_dict().items()
                                                 if k.startswith("extracted_label:")}
            with self.progress.task("writing dataset and logs", total=None):
                dataset_path = write_dataset(pairs, self.run_dir, cfg.output.format)
                self._write_documents(warm_pulls, pulls, clusters)
                self._write_logs(arms, summary)  # stats.json last: its presence marks a finished run
        finally:
            self.extractor.close()
            self.embedding_cache.close()
        logger.info("run finished: %d pairs from %d documents in %s", len(pairs), len(selected), self.run_dir)
        return RunResult(self.run_dir, dataset_path, pairs, warm_pulls + pulls,
                         {"counters": self.stats.as_dict(), "summary": summary}, selected)

    def _warmup(self, doc_budget: int, doc_reference_sim: np.ndarray,
                selection: str) -> tuple[list[int], list[Extraction], int]:
        """Extract a sample first; it sets the reward offset and its pairs are kept.

        Returns the documents, their extractions and how many of them (the
        first ones) were chosen by similarity rather than at random.
        """
        cfg, n = self.config.warmup, len(self.documents)
        n_warm = int(min(doc_budget, n - 1, max(cfg.min_documents, round(cfg.fraction_of_budget * doc_budget))))
        n_top = {"random": 0, "reference": n_warm, "mixed": n_warm // 2}[selection]
        top = [int(i) for i in np.argsort(-doc_reference_sim, kind="stable")[:n_top]]
        rest = np.setdiff1d(np.arange(n), top)
        warm_idx = top + [int(i) for i in self.rng.choice(rest, size=n_warm - n_top, replace=False)]
        extractions: list[Extraction] = []
        with self.progress.task("warm-up extraction", total=n_warm) as task:
            for start in range(0, n_warm, 8):  # small batches so progress moves
                if self.budget.exhausted():  # budget.tokens can end the run inside the warm-up
                    self.stats.inc("warmup_cut_by_budget")
                    break
                batch = warm_idx[start:start + 8]
                extractions += self._extract([self.documents[i] for i in batch])
                task.advance(len(batch))
        warm_idx = warm_idx[:len(extractions)]
        return warm_idx, extractions, min(n_top, len(warm_idx))

    def _align(self, warm_idx: list[int], extractions: list[Extraction], doc_embeddings: np.ndarray) -> np.ndarray:
        """Fine-tune the embedder on the warm-up pairs and re-embed the corpus with it.

        A model already trained in this run directory is reused, never retrained.
        Returns the document embeddings to cluster.
        """
        from equal.alignment import align_embedder, build_examples
        from equal.alignment.trainer import trained_model_ready

        cfg, emb_cfg = self.config.alignment, self.config.embedding
        base_path = getattr(self.embedder, "path", None)
        if base_path is None:
            raise ConfigError("alignment needs a sentence-transformers embedder; set embedding.model to 'minilm' "
                              "or a local model folder, or set alignment.enabled: false")
        model_dir = self.run_dir / "aligned_model"
        if trained_model_ready(model_dir):
            self.stats.inc("alignment_reused")
        else:
            with_pairs = [(i, e) for i, e in zip(warm_idx, extractions) if e.pairs]
            if len(with_pairs) < 2:
                logger.warning("alignment skipped: the warm-up gave pairs for %d documents; need 2", len(with_pairs))
                self.stats.inc("alignment_skipped")
                return doc_embeddings
            texts = [p.as_text() for _, e in with_pairs for p in e.pairs]
            owner = [j for j, (_, e) in enumerate(with_pairs) for _ in e.pairs]
            examples = build_examples(
                [self.documents[i].id for i, _ in with_pairs], [self.documents[i].text for i, _ in with_pairs],
                texts, owner, doc_embeddings[[i for i, _ in with_pairs]],
                self._embed(texts, "embedding warm-up pairs"), n_negatives=cfg.hard_negatives,
                rank_window=cfg.negative_ranks, random_state=self.config.seed,
            )
            with self.progress.task(f"aligning the embedder on {len(examples)} pairs", total=None):
                align_embedder(base_path, examples, model_dir, epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                               batch_size=cfg.batch_size, temperature=cfg.temperature, max_length=cfg.max_length,
                               random_state=self.config.seed, device=emb_cfg.device)
            self.stats.inc("alignment_examples", len(examples))
        weights = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()[:16]
        aligned = SentenceTransformerEmbedder(str(model_dir), device=emb_cfg.device, batch_size=emb_cfg.batch_size,
                                              max_length=emb_cfg.max_length, cache_name=f"aligned:{weights}")
        self.embedder = aligned
        # on Ray, the actors load the aligned model from RUN_DIR: it must lie on storage every node sees
        self.corpus_embedder = corpus_embedder(
            partial(SentenceTransformerEmbedder, str(model_dir), device=emb_cfg.device, batch_size=emb_cfg.batch_size,
                    max_length=emb_cfg.max_length, cache_name=f"aligned:{weights}"), aligned.name, self.config.executor)
        if cfg.reward_model == "aligned":
            self.pair_embedder = aligned
            self.reference_embeddings = self._embed([p.as_text() for p in self.reference], "embedding reference",
                                                    aligned)
        return self._embed_documents("embedding documents (aligned)")

    def _cluster(self, doc_embeddings: np.ndarray) -> Clusters:
        """k-means and the neighbour graph; one cluster of everything when selection is random."""
        cfg, n = self.config.clustering, len(doc_embeddings)
        if self.config.bandit.selection == "random":
            return Clusters(1, np.zeros(n, dtype=np.int64), doc_embeddings.mean(0, keepdims=True), [np.array([0])])
        k = default_n_clusters(n) if cfg.k == "auto" else int(cfg.k)
        with self.progress.task(f"k-means, k={k}", total=None):
            km = KMeansClusterer(k, n_iter=cfg.iterations, random_state=self.config.seed,
                                 max_train_points=cfg.max_train_points).fit(doc_embeddings)
        mu, sigma = cluster_moments(doc_embeddings, km.labels_, k)
        neighbours = neighbour_lists(w2_diag_distances(mu, sigma), threshold=cfg.neighbour_threshold,
                                     quantile=cfg.neighbour_quantile)
        self.stats.inc("clusters", k)
        return Clusters(k, km.labels_, km.centroids_, neighbours)

    def _warmup_rewards(self, extractions: list[Extraction], m: int, n_top: int) -> tuple[list[Pull], float]:
        """Cut the warm-up into pseudo-pulls of m documents; ``offset: auto`` makes their mean reward 0.

        The first ``n_top`` extractions were chosen by similarity, not at random:
        they are cut apart, and the offset comes from the random ones alone, so
        that reward 0 keeps meaning "as good as a random document". (Measured on
        the demo: with an offset set by the best documents, every later pull
        scores below 0 and the bandit leaves the on-task clusters for unexplored
        ones.)
        """
        pulls: list[Pull] = []
        random_pulls: list[Pull] = []
        for part, target in ((extractions[:n_top], pulls), (extractions[n_top:], random_pulls)):
            for start in range(0, len(part), m):
                chunk = part[start:start + m]
                pairs = [p for e in chunk for p in e.pairs]
                target.append(Pull(-1, -1, [e.document_id for e in chunk], pairs, self._distance(pairs), 0.0))
        if self.config.reward.offset == "auto":
            calibration = [p.distance for p in (random_pulls or pulls) if p.distance is not None]
            offset = auto_offset(calibration)
        else:
            offset = float(self.config.reward.offset)
        pulls += random_pulls
        for pull in pulls:
            if pull.distance is not None:
                pull.reward = reward_from_distance(pull.distance, offset)
        return pulls, offset

    def _alpha(self, warm_rewards: list[float]) -> float:
        """``bandit.alpha``, or with ``auto`` the std of the warm-up rewards: a bonus in reward units."""
        if self.config.bandit.alpha != "auto":
            return float(self.config.bandit.alpha)
        return float(np.std(warm_rewards)) if len(warm_rewards) >= 2 and np.std(warm_rewards) > 0 else 0.05

    def _similarity_priors(self, arms: ClusterArms, labels: np.ndarray, doc_reference_sim: np.ndarray,
                           warm_rewards: list[float]) -> None:
        """One pseudo-reward per cluster from how close its documents lie to the reference centroid.

        The clusters' mean similarities are standardised and scaled by the spread
        of the warm-up rewards, so a cluster of on-task documents starts above an
        unexplored one and an off-task cluster below, before any LLM call.
        """
        k = arms.n_arms
        counts = np.bincount(labels, minlength=k)
        sims = np.bincount(labels, weights=doc_reference_sim, minlength=k) / np.maximum(counts, 1)
        present = counts > 0
        if present.sum() < 2 or sims[present].std() == 0:
            return
        z = (sims - sims[present].mean()) / sims[present].std()
        scale = float(np.std(warm_rewards)) if len(warm_rewards) >= 2 else 0.05
        for c in np.flatnonzero(present):
            arms.add_prior(int(c), float(z[c]) * scale)

    def _warmup_priors(self, arms: ClusterArms, labels: np.ndarray, warm_idx: list[int],
                       extractions: list[Extraction], offset: float) -> None:
        """Credit each cluster that holds warm-up documents with the reward of their pairs, shared as usual."""
        by_cluster: dict[int, list[QAPair]] = {}
        for i, extraction in zip(warm_idx, extractions):
            by_cluster.setdefault(int(labels[i]), []).extend(extraction.pairs)
        for cluster, pairs in sorted(by_cluster.items()):
            distance = self._distance(pairs)
            if distance is not None:
                arms.share(cluster, reward_from_distance(distance, offset), pulled=False)
                self.stats.inc("warmup_priors")

    def _arms(self, clusters: Clusters, doc_embeddings: np.ndarray, doc_reference_sim: np.ndarray,
              warm_idx: list[int], order: str) -> ClusterArms:
        """Each cluster's documents not used by the warm-up, in ``order`` (``bandit.document_order``)."""
        labels, k = clusters.labels, clusters.k
        open_docs = np.ones(len(labels), dtype=bool)
        open_docs[warm_idx] = False
        by_label = np.argsort(labels, kind="stable")
        by_label = by_label[open_docs[by_label]]
        members = []
        for c, idx in enumerate(np.split(by_label, np.cumsum(np.bincount(labels[by_label], minlength=k))[:-1])):
            if order == "centroid" and len(idx):
                idx = idx[np.argsort(((doc_embeddings[idx] - clusters.centroids[c]) ** 2).sum(1), kind="stable")]
            elif order == "reference" and len(idx):
                # the bandit still picks clusters by reward; inside one, the likeliest on-task documents go first
                idx = idx[np.argsort(-doc_reference_sim[idx], kind="stable")]
            else:
                idx = self.rng.permutation(idx)
            members.append(idx)
        return ClusterArms(members, clusters.neighbours)

    def _bandit(self, arms: ClusterArms, b: int, m: int, offset: float, alpha: float,
                seen_rewards: list[float]) -> list[Pull]:
        """Rounds of select, extract, reward and share until the budget or the arms run out."""
        cfg = self.config.bandit
        policy = build_policy(cfg.policy, alpha, cfg.alpha_schedule)
        pulls: list[Pull] = []
        total = self.budget.documents_left()
        total = min(int(total) if np.isfinite(total) else arms.remaining(), arms.remaining())
        with (self.run_dir / "rounds.jsonl").open("w") as rounds_log, \
                self.progress.task("bandit rounds (documents)", total=total) as task:
            round_no = 0
            while not self.budget.exhausted() and arms.available().any():
                left = self.budget.documents_left()
                plan = []
                for c in policy.select(arms, b, self.rng):
                    take = int(min(m, left))
                    if take <= 0:
                        break
                    docs = arms.take(c, take)
                    left -= len(docs)
                    plan.append((c, docs))
                if not plan:
                    break
                # one batch per round, so an HTTP backend runs the round's calls concurrently
                extractions = iter(self._extract([self.documents[i] for _, docs in plan for i in docs]))
                round_pulls = []
                for c, docs in plan:
                    pairs = [p for _ in docs for p in next(extractions).pairs]
                    distance = self._distance(pairs)
                    if distance is None:  # no pair: the lowest reward seen so far
                        reward = min(seen_rewards) if seen_rewards else -1.0
                        self.stats.inc("pulls_without_pairs")
                    else:
                        reward = reward_from_distance(distance, offset)
                    seen_rewards.append(reward)
                    round_pulls.append(Pull(round_no, c, [self.documents[i].id for i in docs], pairs, distance,
                                            reward))
                for pull in round_pulls:  # shared after the round: all pulls chose from one state
                    arms.share(pull.cluster, pull.reward)
                pulls += round_pulls
                best = [int(c) for c in np.argsort(-arms.mean_reward(), kind="stable")[:5]]
                rounds_log.write(json.dumps({
                    "round": round_no,
                    "pulls": [{"cluster": p.cluster, "documents": p.document_ids, "pairs": len(p.pairs),
                               "distance": p.distance, "reward": p.reward} for p in round_pulls],
                    "documents_spent": self.budget.documents, "tokens_spent": self.budget.tokens,
                    "best_clusters": best,
                }) + "\n")
                rounds_log.flush()
                task.advance(sum(len(p.document_ids) for p in round_pulls))
                task.note(f"round {round_no} | {int(self.budget.documents)} calls, {int(self.budget.tokens):,} tokens, "
                          f"{sum(len(p.pairs) for p in pulls)} pairs | best clusters {best[:3]}")
                round_no += 1
        self.stats.inc("rounds", round_no)
        return pulls

    def _provenance(self, warm_pulls: list[Pull], pulls: list[Pull], labels: np.ndarray) -> list[QAPair]:
        """Every pair paid for, warm-up included, tagged with where it came from."""
        label_field = self.config.corpus.label_field
        index = {d.id: i for i, d in enumerate(self.documents)}
        out = []
        for stage, group in (("warmup", warm_pulls), ("bandit", pulls)):
            for pull in group:
                for pair in pull.pairs:
                    i = index[pair.document_id]
                    doc = self.documents[i]
                    pair.metadata.update({"source_id": doc.source_id, "cluster": int(labels[i]), "round": pull.round,
                                          "pull_reward": round(pull.reward, 6), "stage": stage})
                    if label_field:
                        pair.metadata["label"] = doc.metadata.get(label_field)
                    out.append(pair)
        return out

    def _write_documents(self, warm_pulls: list[Pull], pulls: list[Pull], clusters: Clusters) -> None:
        """What the report shows: each extracted document (text cut short) and the cluster centroids."""
        index = {d.id: i for i, d in enumerate(self.documents)}
        label_field = self.config.corpus.label_field
        rows = []
        for stage, group in (("warmup", warm_pulls), ("bandit", pulls)):
            for pull in group:
                for doc_id in pull.document_ids:
                    doc = self.documents[index[doc_id]]
                    rows.append({"document_id": doc_id, "cluster": int(clusters.labels[index[doc_id]]),
                                 "round": pull.round, "stage": stage, "pull_reward": round(pull.reward, 6),
                                 "label": doc.metadata.get(label_field) if label_field else None,
                                 "text": doc.text[:DOCUMENT_SNIPPET_CHARS]})
        atomic_write_jsonl(self.run_dir / "documents.jsonl", rows)
        with atomic_file(self.run_dir / "centroids.npy") as tmp, tmp.open("wb") as f:
            np.save(f, clusters.centroids.astype(np.float32))

    def _write_logs(self, arms: ClusterArms, summary: dict[str, Any]) -> None:
        atomic_write_jsonl(self.run_dir / "parse_failures.jsonl", self._failures)
        atomic_write_jsonl(self.run_dir / "decontaminated.jsonl", self._removed)
        mean = arms.mean_reward()
        rows = [{"cluster": c, "size": int(arms.sizes[c]), "pulls": int(arms.pulls[c]),
                 "count": float(arms.count[c]), "mean_reward": float(mean[c]),
                 "neighbours": [int(j) for j in arms.neighbours[c]]} for c in range(arms.n_arms)]
        atomic_write_text(self.run_dir / "clusters.json", json.dumps(rows, indent=1))
        # last, synced: its presence marks a finished run
        atomic_write_text(self.run_dir / FINISHED, json.dumps({"counters": self.stats.as_dict(), "summary": summary},
                                                              indent=2, sort_keys=True))


def run(config: RunConfig, *, progress: Progress | None = None, embedder: Embedder | None = None,
        extractor: Extractor | None = None) -> RunResult:
    """Run EQUAL for ``config`` and return what it wrote. See :class:`EqualRun`."""
    return EqualRun(config, progress=progress, embedder=embedder, extractor=extractor).run()

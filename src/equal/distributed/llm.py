"""Extraction on a Ray cluster: one actor per worker, each with its own LLM backend.

The driver keeps the response cache: each chunk's answers come back to it as
soon as that chunk is done and are stored there, so a killed Ray run resumes
like a local one. Workers send their backend's counters (faults, retries)
back with each chunk; calls and tokens are counted by the driver's extractor
as each answer comes back.

With :class:`PairEmbedding`, each actor also parses its answers and embeds
their pairs with the reward's embedder (on its GPU when Ray gave it one); the
vectors come back with the answers and go into the driver's embedding cache,
where the reward finds them instead of embedding the pairs on the driver.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from equal.distributed.cluster import connect
from equal.embedding import Embedder, EmbeddingCache
from equal.embedding.cache import text_key
from equal.llm.base import LLM, ChatRequest, OnResult
from equal.records import Generation
from equal.stats import Stats

LLMFactory = Callable[[Stats], LLM]
logger = logging.getLogger(__name__)
_POLL_S = 0.5  # how often a batch waiting for its chunks looks whether it was stopped


@dataclass(frozen=True)
class PairEmbedding:
    """What the actors need to embed their answers' pairs, and where the driver keeps the vectors.

    Attributes:
        factory: builds the reward's embedder on an actor (the vectors are
            stored under the name of the embedder it builds).
        cache: the driver's embedding cache, which the reward reads.
    """

    factory: Callable[[], Embedder]
    cache: EmbeddingCache


@dataclass(frozen=True)
class _Chunk:
    """One actor task's answers, and what came with them."""

    start: int
    generations: list[Generation]
    counters: dict[str, int | float]
    node: str
    embedder_name: str = ""
    pair_texts: tuple[str, ...] = ()
    pair_vectors: np.ndarray | None = None


class _LLMWorker:
    """A Ray actor holding one backend (an HTTP client, or a local model loaded once) and, optionally, an embedder."""

    def __init__(self, factory: LLMFactory, embedder_factory: Callable[[], Embedder] | None = None,
                 max_pairs: int = 0) -> None:
        self.stats = Stats()
        self.llm = factory(self.stats)
        self.embedder = embedder_factory() if embedder_factory is not None else None
        self.max_pairs = max_pairs

    def generate(self, start: int, requests: list[ChatRequest]) -> _Chunk:
        import ray

        before = self.stats.as_dict()
        pairs = _PairEmbedder(self.embedder, self.max_pairs) if self.embedder is not None else None
        try:  # the pairs of each answer are embedded while the chunk's later answers are awaited
            generations = self.llm.generate(requests, on_result=pairs.add if pairs is not None else None)
        finally:
            texts, vectors = pairs.finish() if pairs is not None else ((), None)
        if pairs is not None and pairs.error is not None:
            # the answers are paid for: they go back without vectors, and the driver embeds their pairs itself
            logger.warning("a Ray actor could not embed its answers' pairs (%s); the driver embeds them", pairs.error)
            self.stats.inc("pair_embedding_failures")
        after = self.stats.as_dict()
        delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        name = self.embedder.name if self.embedder is not None else ""
        return _Chunk(start, generations, delta, ray.get_runtime_context().get_node_id(), name, texts, vectors)


class _PairEmbedder:
    """Embeds the pairs of answers as they arrive, on a thread of its own.

    Each answer's pairs are one batch, whatever else has arrived, so a pair's
    vector does not depend on when the answers came (padding in a batch moves
    the last bits). Each text is embedded once. An embedder that fails stops
    the embedding (``error``); the answers are not lost with it.
    """

    def __init__(self, embedder: Embedder, max_pairs: int) -> None:
        self._embedder, self._max_pairs = embedder, max_pairs
        self._arrived: queue.SimpleQueue[Generation | None] = queue.SimpleQueue()
        self._texts: dict[str, None] = {}
        self._vectors: list[np.ndarray] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._embed, name="equal-pair-embedder", daemon=True)
        self._thread.start()

    def add(self, index: int, generation: Generation) -> None:
        self._arrived.put(generation)

    def _embed(self) -> None:
        while (generation := self._arrived.get()) is not None:
            new = list(dict.fromkeys(t for t in _pair_texts(generation, self._max_pairs) if t not in self._texts))
            if not new or self.error is not None:
                continue
            try:
                self._vectors.append(self._embedder.encode(new))
            except Exception as exc:  # reported by the actor; the chunk's answers still go back
                self.error = exc
                continue
            self._texts.update(dict.fromkeys(new))

    def finish(self) -> tuple[tuple[str, ...], np.ndarray | None]:
        """Wait for the last answers' pairs; the texts and their vectors, row for row (none after an error)."""
        self._arrived.put(None)
        self._thread.join()
        if self.error is not None or not self._vectors:
            return (), None
        return tuple(self._texts), np.concatenate(self._vectors)


def _pair_texts(generation: Generation, max_pairs: int) -> list[str]:
    """The text the reward embeds for each pair of an answer, parsed as the driver's extractor parses it."""
    from equal.extraction.task import parse_pairs
    from equal.records import QAPair

    if generation.failed:
        return []
    return [QAPair(question=q, answer=a, document_id="").as_text()
            for q, a in parse_pairs(generation.text, max_pairs=max_pairs).pairs]


class RayLLM:
    """Sends a batch of requests to ``workers`` actors, ``chunk_size`` requests a task.

    Its ``name`` (and ``former_names``) are the local backend's, so answers cached
    by a local run are reused by a Ray run and the other way round. With ``pairs``, the actors
    embed their answers' pairs (at most ``max_pairs`` each, as the extractor
    parses them) and the vectors are put in ``pairs.cache`` as each chunk
    arrives (counted as ``pair_vectors_from_workers``).
    """

    def __init__(self, factory: LLMFactory, name: str, *, address: str | None = None, workers: int = 2,
                 chunk_size: int = 8, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0,
                 pairs: PairEmbedding | None = None, max_pairs: int = 5, stats: Stats | None = None,
                 former_names: tuple[str, ...] = ()) -> None:
        if workers < 1 or chunk_size < 1:
            raise ValueError(f"RayLLM needs at least one worker and one request a chunk (workers={workers}, "
                             f"chunk_size={chunk_size})")
        self.factory = factory
        self.name = name
        self.former_names = former_names
        self.address = address
        self.workers = workers
        self.chunk_size = chunk_size
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.pairs = pairs
        self.max_pairs = max_pairs
        self.stats = stats if stats is not None else Stats()
        self.nodes: set[str] = set()
        self._actors: list[Any] = []
        self._actors_lock = threading.Lock()
        self._closed = threading.Event()
        self._sender: ThreadPoolExecutor | None = None
        self._batches: set[_StoppableFuture] = set()  # submitted and not finished: close() stops them

    def _workers(self) -> list[Any]:
        ray = connect(self.address)
        with self._actors_lock:  # close() kills what exists; after it, nothing new is started
            if self._closed.is_set():
                raise CancelledError("the Ray LLM backend is closed")
            if not self._actors:
                worker = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker)(_LLMWorker)
                embedder = (self.pairs.factory, self.max_pairs) if self.pairs is not None else (None, 0)
                self._actors = [worker.options(scheduling_strategy="SPREAD").remote(self.factory, *embedder)
                                for _ in range(self.workers)]
            return list(self._actors)

    def submit(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> Future[list[Generation]]:
        """Send ``requests`` from a background thread and return at once; the future holds what
        :meth:`generate` returns. Batches submitted while one is out go to the actors after it, in order;
        ``on_result`` is called on that thread as each chunk comes back. Cancelling the future (or
        :meth:`close`) stops the batch: chunks not yet sent are never sent."""
        if self._sender is None:
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="equal-ray-llm")
        future = _StoppableFuture()
        self._batches.add(future)
        future.add_done_callback(self._batches.discard)

        def send() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._generate(requests, on_result, future.stopping))
            except BaseException as exc:
                future.set_exception(exc)
        self._sender.submit(send)
        return future

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> list[Generation]:
        return self._generate(requests, on_result, threading.Event())

    def _generate(self, requests: list[ChatRequest], on_result: OnResult | None,
                  stopping: threading.Event) -> list[Generation]:
        if not requests:
            return []
        import ray

        idle = self._workers()
        waiting = deque((start, requests[start:start + self.chunk_size])
                        for start in range(0, len(requests), self.chunk_size))
        running: dict[Any, Any] = {}  # a chunk's result ref -> the actor working on it
        out: list[Generation | None] = [None] * len(requests)

        def stopped() -> bool:
            return stopping.is_set() or self._closed.is_set()

        while waiting or running:
            if stopped():  # looked at before each hand-out: a stopped batch sends none of its waiting chunks
                raise CancelledError("the batch was stopped")
            while idle and waiting:
                actor = idle.pop()
                running[actor.generate.remote(*waiting.popleft())] = actor
            ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
            for ref in ready:
                idle.append(running.pop(ref))
                try:
                    done: _Chunk = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    raise exc.as_instanceof_cause() from None  # e.g. ServerUnavailable, with its advice
                except ray.exceptions.RayActorError:
                    if stopped():  # close() killed the actor under the chunk
                        raise CancelledError("the batch was stopped") from None
                    raise
                self._keep(done, out, on_result)
        return [g for g in out if g is not None]

    def _keep(self, done: _Chunk, out: list[Generation | None], on_result: OnResult | None) -> None:
        """A chunk's counters, node, pair vectors and answers, each answer reported as it is put in ``out``."""
        self.stats.update(done.counters)
        self.stats.inc(f"ray_llm_chunks_on_node:{done.node[:12]}")  # where the work ran, in stats.json
        self.nodes.add(done.node)
        self._keep_vectors(done)
        for j, generation in enumerate(done.generations):
            out[done.start + j] = generation
            if on_result is not None:
                on_result(done.start + j, generation)

    def _keep_vectors(self, done: _Chunk) -> None:
        """Store the pair vectors an actor sent, under the keys the reward looks them up by."""
        if self.pairs is None or done.pair_vectors is None:
            return
        keys = [text_key(done.embedder_name, text) for text in done.pair_texts]
        with self.stats.timed("extract/store pair vectors"):
            # a vector already cached (a reference example's, an earlier run's) is kept as it is
            self.pairs.cache.put_many(keys, done.pair_vectors, replace=False)
        self.stats.inc("pair_vectors_from_workers", len(keys))

    def close(self) -> None:
        """Stop every batch (chunks not yet sent are never sent) and kill the actors."""
        self._closed.set()
        for batch in self._batches.copy():  # each ends cancelled, whether it was waiting or being sent
            batch.cancel()
        if self._sender is not None:
            self._sender.shutdown(wait=False, cancel_futures=True)
            self._sender = None
        with self._actors_lock:
            if self._actors:
                import ray

                for actor in self._actors:
                    ray.kill(actor)
                self._actors = []


class _StoppableFuture(Future[list[Generation]]):
    """A future whose ``cancel`` also tells a batch already being sent to stop."""

    def __init__(self) -> None:
        super().__init__()
        self.stopping = threading.Event()

    def cancel(self) -> bool:
        self.stopping.set()
        return super().cancel()

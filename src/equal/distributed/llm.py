"""Extraction on a Ray cluster: one actor per worker, each with its own LLM backend.

The driver keeps the response cache: each chunk's answers come back to it as
soon as that chunk is done and are stored there, so a killed Ray run resumes
like a local one. Workers send their backend's counters (faults, retries)
back with each chunk; calls and tokens are counted by the driver's extractor
as each answer comes back.

With an :class:`AnswerPostProcessor` (``executor.embed_pairs``:
:class:`equal.extraction.answers.AnswerPairs`), each actor also runs it on its
answers as they arrive, and its results, the vectors of the answers' pairs,
come back with the answers and go to the driver's ``on_answers``. The
transport only moves them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from equal.distributed.cluster import connect
from equal.llm.base import LLM, ChatRequest, OnResult
from equal.records import Generation
from equal.stats import Stats

LLMFactory = Callable[[Stats], LLM]
_POLL_S = 0.5  # how often a batch waiting for its chunks looks whether it was stopped


@dataclass(frozen=True)
class PairVectors:
    """The vectors of pairs' texts, made where the answers arrived.

    Attributes:
        embedder: the name of the embedder that made them (the cache keys them by it).
        texts: each pair's text as the reward embeds it, once each.
        vectors: ``(len(texts), d)`` float32, row for row.
    """

    embedder: str
    texts: tuple[str, ...]
    vectors: np.ndarray


class AnswerBatch(Protocol):
    """What an :class:`AnswerPostProcessor` makes of one chunk's answers, given each as it arrives."""

    def add(self, index: int, generation: Generation) -> None: ...

    def finish(self) -> PairVectors | None:
        """Wait for the last answers' results; ``None`` when there are none (or making them failed)."""
        ...


class AnswerPostProcessor(Protocol):
    """Runs on an actor beside its backend; sent to it once, so it must pickle."""

    def start(self, stats: Stats) -> AnswerBatch:
        """A chunk's post-processing; its faults are counted in ``stats`` (the actor's, sent back with the chunk)."""
        ...


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

    def vectors(self) -> PairVectors | None:
        """The post-processor's results, as it made them."""
        if self.pair_vectors is None:
            return None
        return PairVectors(self.embedder_name, self.pair_texts, self.pair_vectors)


class _LLMWorker:
    """A Ray actor holding one backend (an HTTP client, or a local model loaded once) and, optionally, a
    post-processor of its answers."""

    def __init__(self, factory: LLMFactory, answers: AnswerPostProcessor | None = None) -> None:
        self.stats = Stats()
        self.llm = factory(self.stats)
        self.answers = answers

    def generate(self, start: int, requests: list[ChatRequest]) -> _Chunk:
        import ray

        before = self.stats.as_dict()
        batch = self.answers.start(self.stats) if self.answers is not None else None
        try:  # each answer is post-processed while the chunk's later answers are awaited
            generations = self.llm.generate(requests, on_result=batch.add if batch is not None else None)
        finally:
            vectors = batch.finish() if batch is not None else None
        after = self.stats.as_dict()
        delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        node = ray.get_runtime_context().get_node_id()
        if vectors is None:
            return _Chunk(start, generations, delta, node)
        return _Chunk(start, generations, delta, node, vectors.embedder, vectors.texts, vectors.vectors)


class RayLLM:
    """Sends a batch of requests to ``workers`` actors, ``chunk_size`` requests a task.

    Its ``name`` (and ``former_names``) are the local backend's, so answers cached
    by a local run are reused by a Ray run and the other way round. With ``answers``, the actors
    run it on their answers as they arrive, and ``on_answers`` gets its results on the driver as each
    chunk comes back, before the chunk's answers are reported.
    """

    def __init__(self, factory: LLMFactory, name: str, *, address: str | None = None, workers: int = 2,
                 chunk_size: int = 8, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0,
                 answers: AnswerPostProcessor | None = None,
                 on_answers: Callable[[PairVectors], None] | None = None, stats: Stats | None = None,
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
        self.answers = answers
        self.on_answers = on_answers
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
                self._actors = [worker.options(scheduling_strategy="SPREAD").remote(self.factory, self.answers)
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
        """A chunk's counters, node, post-processed results and answers, each answer reported as it is put in
        ``out``."""
        self.stats.update(done.counters)
        self.stats.inc(f"ray_llm_chunks_on_node:{done.node[:12]}")  # where the work ran, in stats.json
        self.nodes.add(done.node)
        vectors = done.vectors()
        if vectors is not None and self.on_answers is not None:
            self.on_answers(vectors)
        for j, generation in enumerate(done.generations):
            out[done.start + j] = generation
            if on_result is not None:
                on_result(done.start + j, generation)

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

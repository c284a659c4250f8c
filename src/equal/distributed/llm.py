"""Extraction on a Ray cluster: one actor per worker, each with its own LLM backend.

The driver keeps the response cache: each chunk's answers come back to it as
soon as that chunk is done and are stored there, so a killed Ray run resumes
like a local one. Workers send their backend's counters (faults, retries)
back with each chunk; calls and tokens are counted by the driver's extractor
as each answer comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from equal.distributed.cluster import connect
from equal.llm.base import LLM, ChatRequest, OnResult
from equal.records import Generation
from equal.stats import Stats

LLMFactory = Callable[[Stats], LLM]


class _LLMWorker:
    """A Ray actor holding one backend (an HTTP client, or a local model loaded once)."""

    def __init__(self, factory: LLMFactory) -> None:
        self.stats = Stats()
        self.llm = factory(self.stats)

    def generate(self, start: int, requests: list[ChatRequest]) -> tuple[int, list[Generation], dict, str]:
        import ray

        before = self.stats.as_dict()
        generations = self.llm.generate(requests)
        after = self.stats.as_dict()
        delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        return start, generations, delta, ray.get_runtime_context().get_node_id()


class RayLLM:
    """Sends a batch of requests to ``workers`` actors, ``chunk_size`` requests a task.

    Its ``name`` is the local backend's, so answers cached by a local run are
    reused by a Ray run and the other way round.
    """

    def __init__(self, factory: LLMFactory, name: str, *, address: str | None = None, workers: int = 2,
                 chunk_size: int = 8, cpus_per_worker: float = 1.0, stats: Stats | None = None) -> None:
        self.factory = factory
        self.name = name
        self.address = address
        self.workers = workers
        self.chunk_size = chunk_size
        self.cpus_per_worker = cpus_per_worker
        self.stats = stats if stats is not None else Stats()
        self.nodes: set[str] = set()
        self._actors: list[Any] = []

    def _pool(self) -> Any:
        ray = connect(self.address)
        from ray.util import ActorPool

        if not self._actors:
            worker = ray.remote(num_cpus=self.cpus_per_worker)(_LLMWorker)
            self._actors = [worker.options(scheduling_strategy="SPREAD").remote(self.factory)
                            for _ in range(self.workers)]
        return ActorPool(self._actors)

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> list[Generation]:
        if not requests:
            return []
        import ray

        pool = self._pool()
        out: list[Generation | None] = [None] * len(requests)
        for start in range(0, len(requests), self.chunk_size):
            chunk = requests[start:start + self.chunk_size]
            pool.submit(lambda actor, job: actor.generate.remote(*job), (start, chunk))
        while pool.has_next():
            try:
                start, generations, counters, node = pool.get_next_unordered()
            except ray.exceptions.RayTaskError as exc:
                raise exc.as_instanceof_cause() from None  # e.g. ServerUnavailable, with its advice
            self.stats.update(counters)
            self.stats.inc(f"ray_llm_chunks_on_node:{node[:12]}")  # where the work ran, in stats.json
            self.nodes.add(node)
            for j, generation in enumerate(generations):
                out[start + j] = generation
                if on_result is not None:
                    on_result(start + j, generation)
        return [g for g in out if g is not None]

    def close(self) -> None:
        if self._actors:
            import ray

            for actor in self._actors:
                ray.kill(actor)
            self._actors = []

"""Extractors: documents in, :class:`~equal.records.Extraction` out.

:class:`LLMExtractor` looks every request up in the response cache first
and stores each new answer the moment it arrives, so a killed run never
pays for the same call twice. A request that got no usable answer
(``Generation.error``) is never stored, so running the same command again
sends exactly those requests again. :class:`ReplayExtractor` reads pairs already
stored with each document (what the released bandit script does), at zero
LLM cost.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from concurrent.futures import Future
from typing import Protocol

from equal.extraction.pending import Pending
from equal.extraction.task import ExtractionTask, parse_pairs
from equal.llm.base import LLM, ChatRequest, estimate_tokens, valid_token_count
from equal.llm.cache import ResponseCache
from equal.progress import ItemsDone, ignore_items
from equal.records import Document, Extraction, Generation, QAPair
from equal.stats import Stats

logger = logging.getLogger(__name__)


class Extractor(Protocol):
    """Turns documents into pairs.

    ``submit`` starts a batch and returns its extractions, one per document in
    order, to be taken as they arrive; it calls ``done(n)`` as each ``n``
    documents are answered, so a progress bar can move inside the batch.
    ``extract`` is ``submit`` taken whole, with nobody counting.
    """

    name: str

    def submit(self, documents: list[Document], done: ItemsDone | None = None) -> Pending[Extraction]: ...

    def extract(self, documents: list[Document]) -> list[Extraction]: ...

    def close(self) -> None: ...


class LLMExtractor:
    """Extraction with an LLM backend, through the response cache.

    A failed request (a generation with ``error`` set) gives its document an
    extraction without pairs, with ``parse_ok`` false and the reason in
    ``error``; it is not cached. A cached entry that is not a usable answer
    (a failure or an empty answer stored by an older version, token counts out
    of range, a damaged row) is treated as a miss and sent again; these are
    counted as ``llm_cache_entries_resent``. A cached answer that counts no
    prompt tokens (stored by an older version from a server that reported no
    usage) is charged the estimate the backend uses now. A backend that names
    ``former_names`` (the names older versions keyed its answers by) has its
    answers found under those too, and moved to its name.

    Every answer the backend sends (not a failure, not a cache hit) is counted
    here, whichever backend sent it and wherever it ran (in process or on Ray
    actors): ``llm_calls`` and its ``tokens_in`` and ``tokens_out``. A failure
    adds the tokens its attempts were charged (an unusable answer is still
    paid for), not a call. Backends count only their own faults and retries.
    """

    def __init__(self, llm: LLM, task: ExtractionTask, cache: ResponseCache | None = None,
                 stats: Stats | None = None) -> None:
        self.llm = llm
        self.task = task
        self.cache = cache
        self.stats = stats if stats is not None else Stats()
        self.name = llm.name

    def _cached(self, key: str, request: ChatRequest) -> Generation | None:
        cache = self.cache
        if cache is None:
            return None
        cached = cache.get(key)
        if cached is None:
            cached = self._under_former_name(cache, request, key)
        if cached is None:
            return None
        if not usable_answer(cached):
            self.stats.inc("llm_cache_entries_resent")
            return None
        self.stats.inc("llm_cache_hits")
        if cached.tokens_in == 0:
            # no prompt is free: older versions stored 0 when the server reported no usage,
            # which would let a resumed run spend past budget.tokens
            prompt = "".join(str(m.get("content", "")) for m in request.messages)
            cached.tokens_in = estimate_tokens(prompt)
            cached.tokens_out = cached.tokens_out or estimate_tokens(cached.text)
            cached.metadata["tokens_estimated"] = True
        return cached

    def _under_former_name(self, cache: ResponseCache, request: ChatRequest, key: str) -> Generation | None:
        """An answer an older version cached under one of the backend's former names, stored under ``key`` now."""
        for name in self.llm.former_names:
            found = cache.get(request.key(name))
            if found is not None and usable_answer(found):
                cache.put(key, found)
                return found
        return None

    def _count(self, generation: Generation) -> None:
        """Count what the backend sent: the only place ``llm_calls`` and tokens are counted.

        An answer is a call; a failure is not, but the tokens its attempts were charged are counted all the same.
        """
        if not generation.failed:
            self.stats.inc("llm_calls")
        self.stats.inc("tokens_in", generation.tokens_in)
        self.stats.inc("tokens_out", generation.tokens_out)

    def extract(self, documents: list[Document]) -> list[Extraction]:
        return self.submit(documents).rest()

    def submit(self, documents: list[Document], done: ItemsDone | None = None) -> Pending[Extraction]:
        """Look the documents up in the cache, send the rest, and return their extractions as they arrive.

        With a backend that sends without waiting, this returns while the
        requests are in flight; with one that generates in place, once they are
        answered. Answers are counted, cached and reported to ``done`` as they
        arrive either way. Taking a slice of the batch waits for those
        documents' answers only (or for the batch to fail) and parses them on
        the thread that takes it.
        """
        report = done or ignore_items  # progress per document, as each answer arrives
        requests = [self.task.format_input(d) for d in documents]
        keys = [r.key(self.llm.name) for r in requests]
        per_key = Counter(keys)
        generations: dict[str, Generation] = {}
        arrived = threading.Condition()  # notified as each answer is kept, and when the batch is done
        to_send: list[int] = []
        pending: set[str] = set()
        for i, key in enumerate(keys):
            if key in generations or key in pending:
                continue  # the same request twice in one batch is sent once
            cached = self._cached(key, requests[i])
            if cached is not None:
                generations[key] = cached
            else:
                to_send.append(i)
                pending.add(key)
        report(sum(per_key[key] for key in generations))

        def keep(j: int, generation: Generation) -> None:
            self._count(generation)
            if self.cache is not None and usable_answer(generation):
                # on the backend's thread as each answer arrives, while the caller waits or works
                with self.stats.timed("extract/cache writes"):
                    self.cache.put(keys[to_send[j]], generation)  # a failure is never stored as an answer
            report(per_key[keys[to_send[j]]])
            # handed over only once stored: nothing the caller writes from it can outlive an uncached answer
            with arrived:
                generations[keys[to_send[j]]] = generation
                arrived.notify_all()

        with self.stats.timed("extract/requests"):  # a backend that generates in place answers here
            answered = self.llm.submit([requests[i] for i in to_send], on_result=keep)

        def wake(_: Future[list[Generation]]) -> None:
            with arrived:
                arrived.notify_all()
        answered.add_done_callback(wake)  # a failed batch wakes whoever waits for answers that will not come
        failed: list[str] = []

        def extractions(start: int, stop: int) -> list[Extraction]:
            wanted = keys[start:stop]
            with self.stats.timed("extract/requests"):  # waiting for the answers still in flight
                try:
                    with arrived:
                        arrived.wait_for(lambda: answered.done() or all(k in generations for k in wanted))
                    if answered.done():
                        answered.result()  # the backend's failure, if it failed
                except BaseException:  # Ctrl-C or a failed server: the batch's requests stop with the caller
                    answered.cancel()
                    raise
            with self.stats.timed("extract/parse"):
                out = self._parse_all(documents[start:stop], wanted, generations, failed)
            if stop == len(documents) and failed:
                logger.warning(
                    "%d of %d documents got no usable answer from %s (first: %s); they get no pairs in this run "
                    "and nothing was cached for them: running the same command again retries exactly those",
                    len(failed), len(documents), self.llm.name, failed[0])
            return out

        return Pending(len(documents), extractions)

    def _parse_all(self, documents: list[Document], keys: list[str], generations: dict[str, Generation],
                   failed: list[str]) -> list[Extraction]:
        """Each document's pairs from its answer; a failed answer gives none (its error is added to ``failed``)."""
        out = []
        for document, key in zip(documents, keys):
            generation = generations[key]
            if generation.failed:
                failed.append(generation.error)
                out.append(Extraction(document.id, [], generation, parse_ok=False,
                                      error=f"no usable answer from the LLM: {generation.error}"))
                continue
            if generation.tokens_out >= self.task.max_tokens:  # cut off: only the pairs it finished are kept
                self.stats.inc("answers_at_max_tokens")
            pairs, parsed = self.task.format_output(document, generation.text)
            self.stats.update(parsed.repairs)
            if not parsed.ok:
                self.stats.inc("parse_failed")
                if parsed.salvaged:
                    self.stats.inc("parse_salvaged")
            out.append(Extraction(document.id, pairs, generation, parse_ok=parsed.ok, error=parsed.error))
        return out

    def close(self) -> None:
        self.llm.close()


def usable_answer(generation: Generation) -> bool:
    """Whether a generation is an answer that may be cached and reused (not a failure, not empty)."""
    if generation.error or generation.metadata.get("error"):  # older versions cached failures with metadata["error"]
        return False
    if not generation.text.strip():  # older versions cached a `content: null` answer as ""
        return False
    return valid_token_count(generation.tokens_in) and valid_token_count(generation.tokens_out)


class ReplayExtractor:
    """Pairs stored in a document field (a list of ``{"question", "answer"}``): no LLM call.

    The field may hold the list itself or its JSON text (as CSV/Parquet often do).
    """

    def __init__(self, field: str = "qa_pairs", stats: Stats | None = None) -> None:
        self.field = field
        self.stats = stats if stats is not None else Stats()
        self.name = f"replay:{field}"

    def submit(self, documents: list[Document], done: ItemsDone | None = None) -> Pending[Extraction]:
        """The stored pairs of ``documents``, all there at once (each document reported to ``done``)."""
        extractions = self.extract(documents)
        for _ in extractions:
            (done or ignore_items)(1)
        return Pending.ready(extractions)

    def extract(self, documents: list[Document]) -> list[Extraction]:
        out = []
        for document in documents:
            value = document.metadata.get(self.field)
            text = value if isinstance(value, str) else json.dumps(value)
            if value is None:
                self.stats.inc("replay_missing_field")
            parsed = parse_pairs(text if value is not None else "[]")
            self.stats.update(parsed.repairs)
            if not parsed.ok:
                self.stats.inc("parse_failed")
            pairs = [QAPair(question=q, answer=a, document_id=document.id) for q, a in parsed.pairs]
            out.append(Extraction(document.id, pairs, Generation(text=text, cached=True),
                                  parse_ok=parsed.ok, error=parsed.error))
        return out

    def close(self) -> None:
        pass

"""Extractors: documents in, :class:`~equal.records.Extraction` out.

:class:`LLMExtractor` looks every request up in the response cache first
and stores each new answer the moment it arrives, so a killed run never
pays for the same call twice. :class:`ReplayExtractor` reads pairs already
stored with each document (what the released bandit script does), at zero
LLM cost.
"""

from __future__ import annotations

import json
from typing import Protocol

from equal.extraction.task import ExtractionTask, parse_pairs
from equal.llm.base import LLM
from equal.llm.cache import ResponseCache
from equal.records import Document, Extraction, Generation, QAPair
from equal.stats import Stats


class Extractor(Protocol):
    name: str

    def extract(self, documents: list[Document]) -> list[Extraction]:
        """One :class:`Extraction` per document, in order."""
        ...

    def close(self) -> None: ...


class LLMExtractor:
    """Extraction with an LLM backend, through the response cache."""

    def __init__(self, llm: LLM, task: ExtractionTask, cache: ResponseCache | None = None,
                 stats: Stats | None = None) -> None:
        self.llm = llm
        self.task = task
        self.cache = cache
        self.stats = stats if stats is not None else Stats()
        self.name = llm.name

    def extract(self, documents: list[Document]) -> list[Extraction]:
        requests = [self.task.format_input(d) for d in documents]
        keys = [r.key(self.llm.name) for r in requests]
        generations: dict[str, Generation] = {}
        to_send: list[int] = []
        pending: set[str] = set()
        for i, key in enumerate(keys):
            if key in generations or key in pending:
                continue  # the same request twice in one batch is sent once
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                generations[key] = cached
                self.stats.inc("llm_cache_hits")
            else:
                to_send.append(i)
                pending.add(key)

        def keep(j: int, generation: Generation) -> None:
            generations[keys[to_send[j]]] = generation
            if self.cache is not None:
                self.cache.put(keys[to_send[j]], generation)

        self.llm.generate([requests[i] for i in to_send], on_result=keep)
        out = []
        for document, key in zip(documents, keys):
            generation = generations[key]
            pairs, parsed = self.task.format_output(document, generation.text)
            if not parsed.ok:
                self.stats.inc("parse_failed")
                if parsed.salvaged:
                    self.stats.inc("parse_salvaged")
            out.append(Extraction(document.id, pairs, generation, parse_ok=parsed.ok, error=parsed.error))
        return out

    def close(self) -> None:
        self.llm.close()


class ReplayExtractor:
    """Pairs stored in a document field (a list of ``{"question", "answer"}``): no LLM call.

    The field may hold the list itself or its JSON text (as CSV/Parquet often do).
    """

    def __init__(self, field: str = "qa_pairs", stats: Stats | None = None) -> None:
        self.field = field
        self.stats = stats if stats is not None else Stats()
        self.name = f"replay:{field}"

    def extract(self, documents: list[Document]) -> list[Extraction]:
        out = []
        for document in documents:
            value = document.metadata.get(self.field)
            text = value if isinstance(value, str) else json.dumps(value)
            if value is None:
                self.stats.inc("replay_missing_field")
            parsed = parse_pairs(text if value is not None else "[]")
            if not parsed.ok:
                self.stats.inc("parse_failed")
            pairs = [QAPair(question=q, answer=a, document_id=document.id) for q, a in parsed.pairs]
            out.append(Extraction(document.id, pairs, Generation(text=text, cached=True),
                                  parse_ok=parsed.ok, error=parsed.error))
        return out

    def close(self) -> None:
        pass

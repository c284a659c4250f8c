"""The quality phase, after the bandit and before the data set is written: every pair's grade, and the optional
LLM passes (``quality.llm_grade``, ``quality.refine``).

Every pair gets the cheap checks' grade (no LLM call). The LLM passes send one request per pair through the
response cache, so a pass that is killed resumes where it stopped without paying twice; a failed request is
never cached and leaves its pair as it was. Their answers are charged to ``budget.tokens`` (cached ones too, so
a resumed run makes the same choices) and counted as ``grade_*`` and ``refine_*`` beside the extraction's own
counters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from equal.extraction.extractor import usable_answer
from equal.extraction.task import choose_examples
from equal.filters import NgramIndex
from equal.llm.base import LLM, ChatRequest
from equal.llm.cache import ResponseCache
from equal.quality import ReferenceShape, grade, with_grades
from equal.quality.llm import grade_request, parse_grade, parse_refined, refine_request
from equal.records import Generation, PairGrade, QAPair
from equal.run.budget import Budget
from equal.run.context import RunContext
from equal.run.schema import RemovedPair
from equal.stats import Stats

logger = logging.getLogger(__name__)

#: requests sent to the backend at once; the token cap is checked between chunks
CHUNK = 16


@dataclass
class CachedRequests:
    """Requests answered once: from the response cache, else by the LLM (and then cached), while tokens last.

    Counted under ``pass_name``: ``*_calls`` (answers the backend sent), ``*_cache_hits``, ``*_tokens_in``,
    ``*_tokens_out``, ``*_failed`` (no usable answer: nothing cached) and ``*_not_sent`` (left for want of
    tokens).
    """

    llm: LLM
    cache: ResponseCache
    stats: Stats
    pass_name: str
    budget: Budget

    def ask(self, requests: Sequence[ChatRequest]) -> list[Generation | None]:
        """Each request's answer, ``None`` where none came (a failure, or no tokens left to send it)."""
        out: list[Generation | None] = [None] * len(requests)
        keys = [r.key(self.llm.name) for r in requests]
        to_send = []
        for i, key in enumerate(keys):
            cached = self.cache.get(key)
            if cached is not None and usable_answer(cached):
                self.stats.inc(f"{self.pass_name}_cache_hits")
                self.budget = self.budget.charged(0, cached.tokens_in + cached.tokens_out)
                out[i] = cached
            else:
                to_send.append(i)
        for start in range(0, len(to_send), CHUNK):
            chunk = to_send[start:start + CHUNK]
            if self.budget.tokens_left() <= 0:  # the passes spend tokens, never the document budget
                self.stats.inc(f"{self.pass_name}_not_sent", len(to_send) - start)
                break

            def keep(j: int, generation: Generation, chunk: list[int] = chunk) -> None:
                if usable_answer(generation):  # stored as it arrives: a kill loses no paid answer
                    self.cache.put(keys[chunk[j]], generation)

            for i, generation in zip(chunk, self.llm.generate([requests[i] for i in chunk], on_result=keep),
                                     strict=True):
                usable = not generation.failed and usable_answer(generation)
                self._paid(generation, "calls" if usable else "failed")
                out[i] = generation if usable else None
        return out

    def _paid(self, generation: Generation, what: str) -> None:
        """Count what the backend sent (an answer, or a failure whose attempts were charged) and charge it."""
        self.stats.inc(f"{self.pass_name}_{what}")
        self.stats.inc(f"{self.pass_name}_tokens_in", generation.tokens_in)
        self.stats.inc(f"{self.pass_name}_tokens_out", generation.tokens_out)
        self.budget = self.budget.charged(0, generation.tokens_in + generation.tokens_out)


def llm_graded(pairs: list[QAPair], requests: CachedRequests, examples: Sequence[QAPair]) -> list[QAPair]:
    """``pairs`` with the LLM's grade in place of the checks' (their flags stay); an unanswered pair keeps its own."""
    answers = requests.ask([grade_request(p, examples) for p in pairs])
    out = []
    for pair, answer in zip(pairs, answers, strict=True):
        value = parse_grade(answer.text) if answer is not None else None
        if value is None or pair.provenance is None:
            if answer is not None:
                requests.stats.inc("grade_unparsed")
            out.append(pair)
            continue
        flags = pair.provenance.grade.flags if pair.provenance.grade is not None else ()
        out.append(replace(pair, provenance=replace(pair.provenance, grade=PairGrade(value, flags, "llm"))))
    return out


def refined(pairs: list[QAPair], requests: CachedRequests, examples: Sequence[QAPair], *, min_grade: int,
            max_tokens: int, shape: ReferenceShape, protected: NgramIndex | None,
            removed: list[RemovedPair]) -> tuple[list[QAPair], list[int]]:
    """``pairs`` with those graded at least ``min_grade`` rewritten, and the positions of the rewritten ones.

    A rewrite keeps the original in its provenance and gets the checks' grade of its own text. A rewrite that
    copies protected text (the refiner sees reference examples) is dropped for the original, and listed in
    ``removed``.
    """
    chosen = [i for i, p in enumerate(pairs) if p.provenance is not None and p.provenance.grade is not None
              and p.provenance.grade.grade >= min_grade]
    answers = requests.ask([refine_request(pairs[i], examples, max_tokens=max_tokens) for i in chosen])
    out, rewritten = list(pairs), []
    for i, answer in zip(chosen, answers, strict=True):
        original = pairs[i]
        new = parse_refined(answer.text, original) if answer is not None else None
        if new is None or original.provenance is None:
            if answer is not None:
                requests.stats.inc("refine_unparsed")
            continue
        if protected is not None and protected.copies(new):
            requests.stats.inc("refine_decontaminated")
            removed.append(RemovedPair(new.document_id, new.question, new.answer,
                                       f"refined: {protected.n}-gram overlap"))
            continue
        out[i] = replace(new, provenance=replace(original.provenance, grade=grade(new, shape),
                                                 original=(original.question, original.answer)))
        rewritten.append(i)
    return out, rewritten


def improve_pairs(ctx: RunContext, pairs: list[QAPair], reference: Sequence[QAPair], budget: Budget,
                  protected: NgramIndex | None, removed: list[RemovedPair],
                  build_llm: Callable[[], LLM]) -> tuple[list[QAPair], Budget]:
    """Every pair graded by the checks, then (as configured) by an LLM and rewritten; the budget charged for it.

    Order: the checks' grade; the LLM's grade; the rewrite of the pairs graded at least ``refine_min_grade``;
    the LLM's grade of each rewrite (the checks grade it in any case).
    """
    settings, stats = ctx.config.quality, ctx.stats
    shape = ReferenceShape.of(reference)
    pairs = with_grades(pairs, shape)
    if not (settings.llm_grade or settings.refine) or not pairs:
        return pairs, budget
    examples = choose_examples(reference, settings.examples, ctx.config.seed)
    llm = build_llm()
    cache = ResponseCache(ctx.caches.responses)
    try:
        if settings.llm_grade:
            with stats.timed("quality/grade"):
                grading = CachedRequests(llm, cache, stats, "grade", budget)
                pairs, budget = llm_graded(pairs, grading, examples), grading.budget
        if settings.refine:
            with stats.timed("quality/refine"):
                refining = CachedRequests(llm, cache, stats, "refine", budget)
                pairs, rewritten = refined(pairs, refining, examples, min_grade=settings.refine_min_grade,
                                           max_tokens=_max_tokens(ctx), shape=shape, protected=protected,
                                           removed=removed)
                budget = refining.budget
                stats.inc("pairs_refined", len(rewritten))
            if settings.llm_grade and rewritten:
                with stats.timed("quality/grade"):
                    grading = CachedRequests(llm, cache, stats, "grade", budget)
                    again = llm_graded([pairs[i] for i in rewritten], grading, examples)
                    budget = grading.budget
                for i, pair in zip(rewritten, again, strict=True):
                    pairs[i] = pair
    finally:
        cache.close()
        llm.close()
    return pairs, budget


def _max_tokens(ctx: RunContext) -> int:
    section = ctx.config.quality.llm or ctx.config.extraction
    return int(getattr(section, "max_tokens", 768))


def grade_counts(pairs: Sequence[QAPair]) -> dict[str, int]:
    """The ``pairs_grade:N`` counters of ``stats.json``: pairs written per grade."""
    out: dict[str, int] = {}
    for pair in pairs:
        if pair.provenance is not None and pair.provenance.grade is not None:
            key = f"pairs_grade:{pair.provenance.grade.grade}"
            out[key] = out.get(key, 0) + 1
    return out

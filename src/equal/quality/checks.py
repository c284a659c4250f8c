"""Cheap checks of a question-answer pair, and the grade they give: no LLM call.

Each check names one way a pair is poor training data:

- ``points_at_passage``: the question (or answer) leans on a text the reader never sees
  ("according to the passage", "the text above", "in this document");
- ``empty_answer``: the answer holds no word;
- ``copies_question``: the answer repeats the question;
- ``short_answer``: the answer is far shorter than the reference's typical answer
  (under ``SHORT_SHARE`` of its median length in words);
- ``not_a_question``: the question neither asks (no ``?``) nor instructs (no leading
  imperative such as "Find", "Write", "Prove") nor states a code task.

``grade`` turns the flags into a grade on the 1-5 scale an LLM grader uses (5: no flag),
so the two can share a threshold (``equal export --min-grade``). Deterministic: the same
pair and reference statistics always get the same grade.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace

from equal.records import PairGrade, QAPair

#: an answer shorter than this share of the reference's median answer (in words) is flagged short
SHORT_SHARE = 0.25

_POINTER = re.compile(
    r"\b(?:according to|based on|from|in|of|mentioned in|described in|given in|stated in|per)\s+"
    r"(?:the|this|that|these)\s+(?:text|passage|document|article|excerpt|paragraph|section|context|snippet|"
    r"source|material|reading)\b"
    r"|\b(?:the|this)\s+(?:text|passage|document|article|excerpt|paragraph|snippet)\s+"
    r"(?:above|below|says?|states?|mentions?|describes?|discuss(?:es)?|explains?|provided|given|shows?)\b"
    r"|\b(?:does|do|did)\s+(?:the|this)\s+(?:text|passage|document|article|excerpt|paragraph|snippet)\b"
    r"|\b(?:above|aforementioned|the following text|the given text)\b",
    re.IGNORECASE)
_IMPERATIVE = re.compile(
    r"^\s*(?:find|compute|calculate|determine|evaluate|solve|prove|show|simplify|write|implement|explain|"
    r"describe|give|list|name|define|derive|state|identify|compare|convert|create|use|return|complete|"
    r"how|what|why|when|where|which|who|whom|whose|is|are|can|could|does|do|did|should|would|will|let|suppose|"
    r"given|if|for|consider|express|estimate|count|verify|rewrite|fix|refactor|summari[sz]e)\b",
    re.IGNORECASE | re.MULTILINE)
_CODE_TASK = re.compile(r"^\s*(?:def|class|async def|from|import)\s", re.MULTILINE)
_WORD = re.compile(r"\w+")

CHECKS = ("points_at_passage", "empty_answer", "copies_question", "short_answer", "not_a_question")
#: grade points each flag costs (5 is a pair without any flag; the floor is 1)
PENALTY = {"points_at_passage": 2, "empty_answer": 4, "copies_question": 4, "short_answer": 1,
           "not_a_question": 1}


@dataclass(frozen=True, slots=True)
class ReferenceShape:
    """What a pair is held against: the reference set's median answer length in words."""

    median_answer_words: float

    @classmethod
    def of(cls, reference: Iterable[QAPair]) -> ReferenceShape:
        words = [len(_WORD.findall(p.answer)) for p in reference]
        return cls(float(statistics.median(words)) if words else 0.0)


def _normalised(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def flags(pair: QAPair, shape: ReferenceShape) -> tuple[str, ...]:
    """The names of the checks ``pair`` fails, in ``CHECKS`` order."""
    question, answer = _normalised(pair.question), _normalised(pair.answer)
    failed = set()
    if _POINTER.search(pair.question) or _POINTER.search(pair.answer):
        failed.add("points_at_passage")
    if not answer:
        failed.add("empty_answer")
    elif question and (answer == question or (len(answer) >= 3 and " ".join(answer) in " ".join(question))):
        failed.add("copies_question")
    if answer and shape.median_answer_words > 0 and len(answer) < SHORT_SHARE * shape.median_answer_words:
        failed.add("short_answer")
    if "?" not in pair.question and not _IMPERATIVE.search(pair.question) and not _CODE_TASK.search(pair.question):
        failed.add("not_a_question")
    return tuple(name for name in CHECKS if name in failed)


def grade(pair: QAPair, shape: ReferenceShape) -> PairGrade:
    """The cheap checks' grade of ``pair``: 5 less each failed check's penalty, at least 1."""
    failed = flags(pair, shape)
    return PairGrade(max(1, 5 - sum(PENALTY[f] for f in failed)), failed)


def with_grades(pairs: Iterable[QAPair], shape: ReferenceShape) -> list[QAPair]:
    """Each pair with the cheap checks' grade in its provenance (a pair without provenance is kept as it is)."""
    return [replace(p, provenance=replace(p.provenance, grade=grade(p, shape))) if p.provenance is not None else p
            for p in pairs]

"""The rules a corpus record must pass to become documents, one small check each.

:func:`record_checks` lists them in the order they apply; the first that
refuses a record gives the :class:`Skip` it is counted as, and each check is
named by that counter (:class:`Empty` counts ``skipped_empty``). A check looks
at a :class:`Draft`, which works out the record's text, repairs, id and
passages once, when a check (or the reader, for a record that passes) first
asks for them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from equal.corpus.ids import IdAssigner, passage_ids, record_id
from equal.corpus.passages import split_passages
from equal.corpus.skips import Skip, SkipCounter
from equal.text import sanitize


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How records become documents (the arguments of :func:`equal.corpus.read_documents`)."""

    text_field: str = "text"
    id_field: str | None = None
    max_passage_chars: int | None = 3000
    min_chars: int = 1
    max_document_chars: int | None = None
    keep_fields: tuple[str, ...] = ()


class Draft:
    """One record on its way to documents: its fields, and what is worked out from them, each once.

    ``text`` is the text field as read; ``repaired`` the text with lone
    surrogates replaced and NULs dropped (see :func:`equal.text.sanitize`);
    ``source_id`` the record's id (``""`` when it has none); ``passages`` and
    ``passage_ids`` the passages it is split into and their ids. Each is worked
    out when first asked for, by hand in slots: ``cached_property`` takes a
    lock on Python before 3.12 and needs an instance dict, which made reading
    a corpus of short records about 12% slower.
    """

    __slots__ = ("fields", "options", "text", "_repaired", "_text_repairs", "_source_id", "_id_repairs",
                 "_passages", "_passage_ids")

    def __init__(self, fields: dict[str, Any], options: ReadOptions) -> None:
        self.fields = fields
        self.options = options
        self.text: Any = fields.get(options.text_field)  # None when it has none: MissingField comes first
        self._repaired: str | None = None
        self._text_repairs: set[str] = set()
        self._source_id: str | None = None
        self._id_repairs: set[str] = set()
        self._passages: list[str] | None = None
        self._passage_ids: list[str] | None = None

    @property
    def repaired(self) -> str:
        if self._repaired is None:
            self._repaired, self._text_repairs = sanitize(self.text)
        return self._repaired

    @property
    def source_id(self) -> str:
        if self._source_id is None:
            self._source_id, self._id_repairs = record_id(self.fields, self.options.id_field, self.repaired)
        return self._source_id

    @property
    def repairs(self) -> set[str]:
        """The repairs made to the text and the id (``repaired_surrogates``, ``repaired_nul``)."""
        _ = self.source_id  # the text's repairs, then the id's
        return self._text_repairs | self._id_repairs

    @property
    def passages(self) -> list[str]:
        if self._passages is None:
            limit = self.options.max_passage_chars
            self._passages = [self.repaired.strip()] if limit is None else split_passages(self.repaired, limit)
        return self._passages

    @property
    def passage_ids(self) -> list[str]:
        if self._passage_ids is None:
            self._passage_ids = passage_ids(self.source_id, len(self.passages))
        return self._passage_ids


class RecordCheck(Protocol):
    """A rule a record must pass: :meth:`check` gives the :class:`Skip` of a record it refuses, else ``None``."""

    #: the counter a refused record bumps, named after the check
    counter: ClassVar[SkipCounter]

    def check(self, draft: Draft) -> Skip | None: ...


@dataclass(frozen=True, slots=True)
class MissingField:
    """The record has no text field."""

    text_field: str
    counter: ClassVar[SkipCounter] = "skipped_missing_field"

    def check(self, draft: Draft) -> Skip | None:
        return Skip(self.counter) if self.text_field not in draft.fields else None


@dataclass(frozen=True, slots=True)
class WrongType:
    """The text field holds no string (a number, a list, null)."""

    counter: ClassVar[SkipCounter] = "skipped_wrong_type"

    def check(self, draft: Draft) -> Skip | None:
        return Skip(self.counter) if not isinstance(draft.text, str) else None


@dataclass(frozen=True, slots=True)
class Empty:
    """The text is shorter than ``min_chars`` once stripped of surrounding whitespace; ``repaired``: once its
    repairs are made too (a text of NULs and spaces is empty only then)."""

    min_chars: int
    repaired: bool = False
    counter: ClassVar[SkipCounter] = "skipped_empty"

    def check(self, draft: Draft) -> Skip | None:
        text = draft.repaired if self.repaired else draft.text
        return Skip(self.counter) if len(text.strip()) < self.min_chars else None


@dataclass(frozen=True, slots=True)
class TooLong:
    """The text is longer than ``corpus.max_document_chars``."""

    max_chars: int
    counter: ClassVar[SkipCounter] = "skipped_too_long"

    def check(self, draft: Draft) -> Skip | None:
        if len(draft.text) <= self.max_chars:
            return None
        return Skip(self.counter, "a document of %d characters is over corpus.max_document_chars=%d; skipped",
                    (len(draft.text), self.max_chars))


def looks_binary(text: str) -> bool:
    """True when a decoded string is mostly control characters, NUL included (a binary blob).

    A few stray NULs in real text do not make it binary: they are dropped as
    a repair (``repaired_nul``).
    """
    sample = text[:4096]
    controls = sum(1 for ch in sample if ch not in "\n\r\t" and unicodedata.category(ch) == "Cc")
    return controls > 0.1 * len(sample)


@dataclass(frozen=True, slots=True)
class Binary:
    """The text is mostly control characters (see :func:`looks_binary`)."""

    counter: ClassVar[SkipCounter] = "skipped_binary"

    def check(self, draft: Draft) -> Skip | None:
        return Skip(self.counter) if looks_binary(draft.text) else None


@dataclass(frozen=True, slots=True)
class MissingId:
    """The id field is absent, null, empty, or only NULs."""

    counter: ClassVar[SkipCounter] = "skipped_missing_id"

    def check(self, draft: Draft) -> Skip | None:
        return Skip(self.counter) if not draft.source_id else None


@dataclass(frozen=True, slots=True)
class DuplicateId:
    """The record's id, or one of its passage ids, is already taken (see :class:`IdAssigner`)."""

    ids: IdAssigner
    counter: ClassVar[SkipCounter] = "skipped_duplicate_id"

    def check(self, draft: Draft) -> Skip | None:
        source_id = draft.source_id
        return self.ids.taken(source_id) or self.ids.passage_taken(source_id, draft.passage_ids)


def record_checks(options: ReadOptions, ids: IdAssigner) -> tuple[RecordCheck, ...]:
    """Every check of ``options``, in the order they apply: the text field, its text, then its ids."""
    too_long = () if options.max_document_chars is None else (TooLong(options.max_document_chars),)
    return (MissingField(options.text_field), WrongType(), Empty(options.min_chars), *too_long, Binary(),
            Empty(options.min_chars, repaired=True), MissingId(), DuplicateId(ids))


def first_skip(checks: tuple[RecordCheck, ...], draft: Draft) -> Skip | None:
    """The skip of the first check that refuses ``draft``, or ``None`` when it passes them all."""
    for check in checks:
        skip = check.check(draft)
        if skip is not None:
            return skip
    return None

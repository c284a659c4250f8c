"""Document ids: a record's own id or a hash of its text, its passages' ids, and one namespace for them all.

A record is named by its id field (repaired like its text, see
:mod:`equal.text`) or, without one, by a hash of its text. A record split
into passages gives each the id ``{id}#p{index}``; one kept whole keeps its
own. Record ids and passage ids share one namespace: a record whose id, or
one of whose passage ids, is already taken is skipped as
``skipped_duplicate_id``, so every ``Document.id`` of a read is unique and
names one source.
"""

from __future__ import annotations

import hashlib
from typing import Any

from equal.corpus.seen_ids import SeenIds
from equal.corpus.skips import Skip
from equal.text import sanitize


def content_id(text: str) -> str:
    """A stable id for a text: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def record_id(record: dict[str, Any], id_field: str | None, text: str) -> tuple[str, set[str]]:
    """The id of a record, and the repairs made to it.

    With ``id_field`` set, the field's value as a string, repaired (``""`` when
    the field is absent, null, empty or only NULs); else the :func:`content_id`
    of ``text``.
    """
    if not id_field:
        return content_id(text), set()
    raw = record.get(id_field)
    if raw is None or raw == "":
        return "", set()
    return sanitize(str(raw))


def passage_ids(source_id: str, passages: int) -> list[str]:
    """The ids of a record's passages: its own id when it is one passage, else ``{id}#p0``, ``{id}#p1``, ..."""
    return [source_id] if passages == 1 else [f"{source_id}#p{i}" for i in range(passages)]


class IdAssigner:
    """The ids a read has given out, record and passage ids alike, in bounded memory (:class:`SeenIds`).

    The id of a record split into passages is not a document's id, but it is
    taken all the same: a later record cannot have it.
    """

    def __init__(self) -> None:
        self._given = SeenIds()  # every Document.id given out
        self._split = SeenIds()  # the ids of records split into passages

    def taken(self, source_id: str) -> Skip | None:
        """A skip when a record's id is already the id of an earlier record or passage."""
        if source_id in self._given or source_id in self._split:
            return Skip("skipped_duplicate_id",
                        "the id %r is already taken by an earlier record or passage; skipped", (source_id,))
        return None

    def passage_taken(self, source_id: str, ids: list[str]) -> Skip | None:
        """A skip when one of the passage ids of a record split in several is already the id of an earlier record."""
        clash = next((pid for pid in ids if pid in self._given), None) if len(ids) > 1 else None
        if clash is None:  # one passage has the record's id, checked by taken()
            return None
        return Skip("skipped_duplicate_id",
                    "the record %r is split into passages, and the passage id %r is already the id of an earlier "
                    "record; skipped (give that record another id to keep both)", (source_id, clash))

    def give(self, source_id: str, ids: list[str]) -> None:
        """Take the ids of a record's passages, and the record's own when it is split."""
        self._given.update(ids)
        if len(ids) > 1:
            self._split.add(source_id)

    def close(self) -> None:
        try:
            self._given.close()
        finally:
            self._split.close()

    def __enter__(self) -> IdAssigner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

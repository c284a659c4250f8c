"""Why a record or a file of a corpus is not read: a typed reason that the reader counts and says.

Readers and record checks never stop a read for a bad record, and never
touch the counters themselves: they hand back a :class:`Skip`, and
:mod:`equal.corpus.readers` bumps its counter in ``stats`` and logs its
warning, in the order the skips come.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Every counter a skip bumps, one per reason.
SkipCounter = Literal[
    "skipped_files",  # files of a folder or pattern that are not of the formats read
    "skipped_not_a_file",  # a pipe, device, socket or broken link named like a data or text file
    "skipped_too_long",  # a line, field or file over the record limit, or a text over corpus.max_document_chars
    "skipped_undecodable",  # not UTF-8
    "skipped_corrupt_line",  # not JSON, or a CSV line the csv module refuses
    "skipped_not_an_object",  # JSON, but not an object
    "skipped_missing_field",  # no text field
    "skipped_wrong_type",  # a text field that holds no string
    "skipped_empty",  # a text shorter than corpus.min_chars, before or after its repairs
    "skipped_binary",  # a text that is mostly control characters
    "skipped_missing_id",  # an id field that is absent, null or empty
    "skipped_duplicate_id",  # an id, or a passage id, already given out
]


@dataclass(frozen=True, slots=True)
class Skip:
    """Something not read: the counter it bumps (by ``count``), and the warning that says where and why.

    ``warning`` is a :mod:`logging` format string filled with ``args`` (built only
    where it is shown); ``""`` for a skip that is only counted.
    """

    counter: SkipCounter
    warning: str = ""
    args: tuple[object, ...] = ()
    count: int = 1

"""Reading lines in bounded memory, whatever a file holds.

A JSONL or CSV line is read at most ``max_bytes`` at a time; a longer one is
refused while the rest of it is read on in small chunks and dropped (a file
without a single newline included), so a reader never holds much more than
the longest record it accepts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

#: The longest record read (a JSONL line, a CSV line or field, a text file) when no document limit is set.
DEFAULT_MAX_RECORD_BYTES = 64 * 2**20
#: The most bytes one character of text can take in a JSONL line: an escaped pair of surrogates.
MAX_BYTES_PER_CHAR = len(r"\ud83d\ude00")
#: Room in a record for the fields beside its text (id, label, stored pairs).
RECORD_SLACK_BYTES = 16 * 2**20
_DRAIN_CHUNK = 2**20  # the rest of an over-long line is read on and dropped this many bytes at a time


def max_record_bytes(max_document_chars: int | None) -> int:
    """The longest record worth reading for documents of at most ``max_document_chars`` characters.

    A text of ``n`` characters takes at most ``12 n`` bytes in a JSONL line
    (every character an escaped surrogate pair), plus room for the other
    fields; without a limit, :data:`DEFAULT_MAX_RECORD_BYTES`.
    """
    if max_document_chars is None:
        return DEFAULT_MAX_RECORD_BYTES
    return MAX_BYTES_PER_CHAR * max_document_chars + RECORD_SLACK_BYTES


def bounded_lines(f: IO[bytes], max_bytes: int) -> Iterator[bytes | None]:
    """Each line of ``f``, or ``None`` for a line of more than ``max_bytes`` bytes.

    The rest of an over-long line is read on in 1 MiB chunks and dropped, so at
    most about ``max_bytes`` bytes are held whatever the file holds.
    """
    while True:
        line = f.readline(max_bytes + 1)
        if not line:
            return
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while True:
                chunk = f.readline(_DRAIN_CHUNK)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield None
        else:
            yield line


class LineTooLong(Exception):
    """A text line longer than the record limit (already read on to its end and dropped)."""


class BoundedTextLines:
    """The lines of a text file (``newline=""``), raising :class:`LineTooLong` for an over-long one.

    An iterator object rather than a generator, so that the CSV reader can go
    on with the next line after one was refused.
    """

    def __init__(self, f: IO[str], max_chars: int) -> None:
        self._f = f
        self._max = max_chars

    def __iter__(self) -> BoundedTextLines:
        return self

    def __next__(self) -> str:
        line = self._f.readline(self._max + 1)
        if not line:
            raise StopIteration
        if len(line) > self._max and line[-1] not in "\r\n":
            while True:
                chunk = self._f.readline(_DRAIN_CHUNK)
                if not chunk or chunk[-1] in "\r\n":
                    break
            raise LineTooLong
        return line

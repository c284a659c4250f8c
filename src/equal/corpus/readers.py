"""Reading a corpus: its records from any format, then the records as passages ready to embed and extract.

:func:`read_records` yields the plain records (dicts) of a file, folder or
glob pattern (:mod:`~equal.corpus.shards` lists the files, a reader of
:mod:`~equal.corpus.formats` reads each); :func:`read_documents` turns them
into :class:`~equal.records.Document` passages, each record through the
checks of :mod:`~equal.corpus.checks` and the ids of
:mod:`~equal.corpus.ids`. Bad records never stop a read: each one is skipped
and counted with its reason in ``stats`` (``skipped_corrupt_line``,
``skipped_missing_field``, ``skipped_empty``, ...; see
:mod:`~equal.corpus.skips`), and warned about where a warning says more.

Memory stays bounded whatever a file holds (:mod:`~equal.corpus.bounded`),
and only regular files and folders are read (:mod:`~equal.corpus.paths`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from equal.corpus.bounded import (
    DEFAULT_MAX_RECORD_BYTES,
    MAX_BYTES_PER_CHAR,
    RECORD_SLACK_BYTES,
    max_record_bytes,
)
from equal.corpus.checks import Draft, ReadOptions, first_skip, looks_binary, record_checks
from equal.corpus.formats import READERS, Records
from equal.corpus.ids import IdAssigner, content_id
from equal.corpus.paths import check_kind, check_readable
from equal.corpus.shards import (
    FORMATS,
    SHARDS,
    TEXT_SUFFIXES,
    FolderContents,
    corpus_files,
    detect_format,
    is_pattern,
    is_saved_dataset,
    outline,
    plan,
    shard_files,
)
from equal.corpus.skips import Skip
from equal.errors import InputError
from equal.records import Document
from equal.stats import Stats
from equal.text import sanitize_value

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES", "FORMATS", "MAX_BYTES_PER_CHAR", "RECORD_SLACK_BYTES", "SHARDS", "TEXT_SUFFIXES",
    "FolderContents", "content_id", "corpus_files", "detect_format", "is_pattern", "looks_binary",
    "max_record_bytes", "outline", "read_documents", "read_records",
]

logger = logging.getLogger(__name__)


def _note(skip: Skip, stats: Stats) -> None:
    """Count a skip, and say its warning."""
    stats.inc(skip.counter, skip.count)
    if skip.warning:
        logger.warning(skip.warning, *skip.args)


def _counted(records: Records, stats: Stats) -> Iterator[dict[str, Any]]:
    """The records of a reader, each of its skips counted and said as it comes."""
    for record in records:
        if isinstance(record, Skip):
            _note(record, stats)
        else:
            yield record


def _read(path: Path, fmt: str, stats: Stats, max_bytes: int) -> Iterator[dict[str, Any]]:
    """The records of one file (or text folder, or saved dataset) read as ``fmt``."""
    try:
        yield from _counted(READERS[fmt](path, max_bytes), stats)
    except OSError as exc:  # permissions, a vanished file, a disk error mid-read
        raise InputError(f"cannot read {path}: {exc}; check that the path is readable") from exc


def read_records(path: str | Path, fmt: str = "auto", stats: Stats | None = None, *,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[dict[str, Any]]:
    """Yield the raw records of a corpus file or folder.

    Args:
        path: a file (``.jsonl``, ``.parquet``, ``.csv``, ``.txt``), a folder
            (a dataset saved with ``datasets.save_to_disk``, data files, or text
            files) or a glob pattern of data files (``shards/*.jsonl``). Every
            data file (JSONL, Parquet, CSV) of a folder or pattern is read, each
            by its suffix, one after another in name order; a folder without any
            is read as text files. The files of a folder or pattern that are not
            read are counted as ``skipped_files`` and named in a warning.
        fmt: one of ``auto``, ``jsonl``, ``parquet``, ``csv``, ``text``, ``hf``;
            set on a folder, only its files of that format are read.
        stats: counters that receive skip reasons.
        max_record_bytes: a longer JSONL line, CSV line or field, or text file is
            skipped as ``skipped_too_long`` without being held in memory.

    Raises:
        InputError: the path does not exist, is standard input, a pipe, a device
            or a socket, cannot be read, has an unknown format, or is a folder or
            pattern with no file of the format (the message says what it holds).
    """
    path = Path(path)
    stats = stats if stats is not None else Stats()
    pattern = is_pattern(path) and not path.exists()
    if not pattern:
        check_kind(path)
    if fmt == "auto" and path.is_dir() and is_saved_dataset(path):
        fmt = "hf"
    if pattern or (path.is_dir() and fmt != "hf"):
        contents, read = plan(path, fmt)
        unread = contents.unread(read, fmt)
        if unread is not None:
            _note(unread, stats)
        if read == {"text"}:
            yield from _read(path, "text", stats, max_record_bytes)
        else:
            yield from _read_shards(path, shard_files(path, fmt, read), stats, max_record_bytes)
        return
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in READERS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    check_readable(path)
    yield from _read(path, fmt, stats, max_record_bytes)


def _read_shards(source: Path, files: Iterator[tuple[Path, str]], stats: Stats,
                 max_bytes: int) -> Iterator[dict[str, Any]]:
    """The records of each file in turn, each read as its format: one file is open at a time, and the next is
    found only then."""
    found = False
    for file, fmt in files:
        if not file.is_file():
            if not file.is_dir():  # a pipe, device or socket, or a broken link, named like a shard
                _note(Skip("skipped_not_a_file", "%s is not a regular file; skipped", (file,)), stats)
            continue
        found = True
        check_readable(file)
        yield from _read(file, fmt, stats, max_bytes)
    if not found:
        raise InputError(f"{source} has no regular file to read (those named like data files are pipes, devices or "
                         "broken links); give the file or files")


def read_documents(
    path: str | Path,
    *,
    text_field: str = "text",
    id_field: str | None = None,
    fmt: str = "auto",
    max_passage_chars: int | None = 3000,
    min_chars: int = 1,
    max_document_chars: int | None = None,
    keep_fields: tuple[str, ...] = (),
    stats: Stats | None = None,
) -> Iterator[Document]:
    """Read a corpus as passages ready to embed and extract.

    Text is sanitised as it is read: lone surrogates become U+FFFD and NUL
    characters are dropped, in the text, the id and the kept fields, and each
    record repaired is counted (``repaired_surrogates``, ``repaired_nul``).
    Record ids and passage ids (``{id}#p{index}``) share one namespace: a
    record whose id, or one of whose passage ids, is already taken is skipped
    as ``skipped_duplicate_id``, so every yielded ``Document.id`` is unique
    and names one source.

    Args:
        path: corpus file or folder (see :func:`read_records`).
        text_field: the field that holds the document text.
        id_field: the field that holds a document id; ``None`` uses a content hash.
        fmt: the corpus format, or ``auto``.
        max_passage_chars: split longer texts into passages on paragraph
            boundaries; ``None`` keeps each record whole.
        min_chars: texts shorter than this (after stripping) are skipped as empty.
        max_document_chars: longer texts are skipped as ``skipped_too_long``;
            records too big to hold such a text are skipped unread (see
            :func:`max_record_bytes`).
        keep_fields: record fields copied into ``Document.metadata``.
        stats: counters that receive ``documents_read``, ``passages``, skip reasons and repairs.

    Yields:
        One :class:`Document` per passage, in corpus order.
    """
    stats = stats if stats is not None else Stats()
    path = Path(path)
    if fmt == "auto" and (not is_pattern(path) or path.exists()):
        check_kind(path)  # a device or pipe is named as such, not as a file of unknown format
    read_as = detect_format(path) if fmt == "auto" else fmt
    if read_as == "text" and id_field is None:
        id_field = "id"  # text files are named by their relative path
    options = ReadOptions(text_field, id_field, max_passage_chars, min_chars, max_document_chars, keep_fields)
    records, found_field = 0, False
    with IdAssigner() as ids:
        checks = record_checks(options, ids)
        for record in read_records(path, fmt, stats, max_record_bytes=max_record_bytes(max_document_chars)):
            records += 1
            found_field = found_field or text_field in record
            draft = Draft(record, options)
            skip = first_skip(checks, draft)
            if skip is not None:
                _note(skip, stats)
                continue
            ids.give(draft.source_id, draft.passage_ids)
            yield from _documents(draft, stats)
    if records and not found_field:
        raise _no_text_field(path, fmt, read_as, text_field)


def _documents(draft: Draft, stats: Stats) -> Iterator[Document]:
    """The passages of a record that passed every check, its repairs and kept fields counted."""
    repairs = draft.repairs
    metadata: dict[str, Any] = {}
    for key in draft.options.keep_fields:
        if key in draft.fields:
            metadata[key], field_repairs = sanitize_value(draft.fields[key])
            repairs |= field_repairs
    for name in sorted(repairs):
        stats.inc(name)
    stats.inc("documents_read")
    for pid, passage in zip(draft.passage_ids, draft.passages):
        stats.inc("passages")
        yield Document(id=pid, text=passage, source_id=draft.source_id, metadata=dict(metadata))


def _no_text_field(path: Path, fmt: str, read_as: str, text_field: str) -> InputError:
    """The error for a corpus none of whose records has the text field."""
    if read_as == "text" and path.is_dir():  # the field names a field of data records, not of text files
        return InputError(
            f"{outline(path, fmt)}. corpus.text_field {text_field!r} names a field of data records, and "
            "a text file's document is in the field 'text': point corpus.path at the data files (JSONL, "
            "Parquet or CSV; convert others to one of those), or unset corpus.text_field to read the text files"
        )
    return InputError(
        f"no record of {path} has the text field {text_field!r}; "
        "set corpus.text_field (--text-field) to the field that holds the text"
    )

"""Streaming readers for corpus files: JSONL, Parquet, CSV, text folders, HF datasets.

Each reader yields plain records (dicts); :func:`read_documents` turns them
into :class:`~equal.records.Document` passages. Bad records never stop a
read: each one is skipped and counted with its reason in ``stats``
(``skipped_corrupt_line``, ``skipped_missing_field``, ``skipped_empty``, ...).

Memory stays bounded whatever a file holds: a JSONL or CSV line and a text
file are read at most ``max_record_bytes`` at a time, and a longer one is
skipped as ``skipped_too_long`` while the rest of it is read on in small
chunks and dropped (a file without a single newline included). Only regular
files and folders are read: a pipe, a device such as ``/dev/zero`` or a socket
could never be read twice, or never ends.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import logging
import os
import stat
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from equal.corpus.passages import split_passages
from equal.corpus.seen_ids import SeenIds
from equal.errors import InputError
from equal.records import Document
from equal.stats import Stats
from equal.text import sanitize, sanitize_value

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "parquet", "csv", "text", "hf")
_SUFFIX_FORMATS = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".csv": "csv",
    ".txt": "text",
    ".md": "text",
}
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
#: The files a folder or a glob pattern of shards of each format is made of.
_SHARD_SUFFIXES = {"jsonl": (".jsonl", ".json", ".ndjson"), "parquet": (".parquet",), "csv": (".csv",)}
#: The corpus format of a file inside a folder or pattern, by its suffix.
_FILE_FORMATS = {**{s: fmt for fmt, suffixes in _SHARD_SUFFIXES.items() for s in suffixes},
                 **dict.fromkeys(TEXT_SUFFIXES, "text")}
#: A folder or pattern of data files (JSONL, Parquet, CSV, one format or several), each read by its suffix.
SHARDS = "shards"
_EXAMPLES = 3  # names kept per kind of file, to say what a folder holds

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


def is_pattern(path: str | Path) -> bool:
    """Whether ``path`` is a glob pattern (``shards/*.jsonl``, ``data/**/part-*.parquet``) rather than a path."""
    return any(ch in str(path) for ch in "*?[")


def _file_format(path: Path) -> str | None:
    """The corpus format of a file of a folder or pattern, from its suffix; None for any other file."""
    return _FILE_FORMATS.get(path.suffix.lower())


def _is_saved_dataset(folder: Path) -> bool:
    """Whether ``folder`` holds a dataset saved with ``datasets.save_to_disk``."""
    return (folder / "dataset_info.json").exists() or (folder / "dataset_dict.json").exists()


@dataclass
class FolderContents:
    """What a folder or glob pattern holds: its files counted by format, with the first few names of each.

    A file of no corpus format is counted under its suffix (``.gz``), or as
    ``no suffix``; folders themselves are not counted.
    """

    source: Path
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def scan(cls, source: Path) -> FolderContents:
        """List ``source`` (a folder, walked whole, or a pattern) by names only; nothing is read."""
        contents = cls(source)
        for path in _glob(source) if is_pattern(source) else _walk(source):
            if path.is_dir():
                continue
            kind = _file_format(path) or path.suffix.lower() or "no suffix"
            contents.counts[kind] += 1
            names = contents.examples.setdefault(kind, [])
            if len(names) < _EXAMPLES:
                names.append(str(path.relative_to(source)) if source.is_dir() else str(path))
        return contents

    @property
    def shard_formats(self) -> list[str]:
        """The data formats (JSONL, Parquet, CSV) it has files of."""
        return [fmt for fmt in _SHARD_SUFFIXES if self.counts[fmt]]

    def describe(self, kinds: list[str] | None = None) -> str:
        """``3 text files (README.md, CHANGELOG.md, LICENSE.md), 2 .gz files (a.gz, b.gz)``, for ``kinds`` or all."""
        parts = []
        for kind in kinds if kinds is not None else sorted(self.counts, key=lambda k: (-self.counts[k], k)):
            n = self.counts[kind]
            names = ", ".join(self.examples[kind]) + (", ..." if n > len(self.examples[kind]) else "")
            files = "file" if n == 1 else "files"
            label = f"{files} with no suffix" if kind == "no suffix" else f"{kind} {files}"
            parts.append(f"{n} {label} ({names})")
        return ", ".join(parts) or "nothing"

    def others(self, read: set[str]) -> list[str]:
        """The kinds of file that are not read when the formats ``read`` are."""
        return sorted((kind for kind in self.counts if kind not in read), key=lambda k: (-self.counts[k], k))

    def unreadable(self, fmt: str) -> InputError:
        """The error for a folder or pattern that holds no file of ``fmt`` (``auto``: of any corpus format)."""
        if fmt == "auto" and is_pattern(self.source):  # name the format of the pattern's own suffix
            fmt = _FILE_FORMATS.get(self.source.suffix.lower(), fmt)
        what = "file of a corpus format" if fmt == "auto" else f"{fmt} file"
        where = f"is a folder with no {what} in it" if self.source.is_dir() else f"matches no {what}"
        return InputError(
            f"{self.source} {where} ({_suffixes(fmt)}); it holds {self.describe()}. Give data files in one of "
            "those formats, set corpus.format to text (a folder of text files) or hf (a dataset saved with "
            "datasets.save_to_disk), or point corpus.path at the files")


def _suffixes(fmt: str) -> str:
    fmts = [*_SHARD_SUFFIXES, "text"] if fmt in ("auto", SHARDS) else [fmt]
    return ", ".join(s for f in fmts for s in (TEXT_SUFFIXES if f == "text" else _SHARD_SUFFIXES.get(f, ())))


def _formats_read(contents: FolderContents, fmt: str) -> set[str]:
    """The formats of the files read from a folder or pattern: ``fmt``, or for ``auto`` every data format it
    holds, else text.

    Raises:
        InputError: it holds no file of those formats; the message says what it holds.
    """
    if fmt in ("auto", SHARDS):
        chosen = set(contents.shard_formats) or ({"text"} if contents.counts["text"] else set())
    else:
        chosen = {fmt} if contents.counts[fmt] else set()
    if not chosen:
        raise contents.unreadable("auto" if fmt == SHARDS else fmt)
    return chosen


def _report_skipped(contents: FolderContents, read: set[str], fmt: str, stats: Stats) -> None:
    """Count the files of a folder or pattern that are not read (``skipped_files``) and name them in a warning."""
    others = contents.others(read)
    if not others:
        return
    stats.inc("skipped_files", sum(contents.counts[kind] for kind in others))
    if fmt not in ("auto", SHARDS):
        why = f"corpus.format is {fmt}"
    elif read == {"text"}:
        why = "they are of no corpus format"
    else:
        formats = ", ".join(sorted(read))
        why = (f"the {formats} files are the corpus; text files beside data files are taken for its documentation "
               "(set corpus.format: text to read the text files instead)"
               if "text" in others else f"the {formats} files are the corpus")
    logger.warning("%s: %s not read, as %s", contents.source, contents.describe(others), why)


def detect_format(path: Path) -> str:
    """Guess the format of ``path`` from its suffix or what it holds.

    A file takes the format of its suffix. A folder is a saved dataset
    (``hf``); else a folder or glob pattern holding data files (JSONL,
    Parquet or CSV) is :data:`SHARDS`, each of its data files read by its own
    suffix, and one holding only text files (``.txt``, ``.md``, ...) is
    ``text``. Every file is looked at, not the first found.

    Raises:
        InputError: a file of unknown suffix, or a folder or pattern holding
            no file of a corpus format (the message says what it holds).
    """
    if is_pattern(path) or path.is_dir():
        if path.is_dir() and _is_saved_dataset(path):
            return "hf"
        return SHARDS if _formats_read(FolderContents.scan(path), "auto") != {"text"} else "text"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {path} from its suffix {path.suffix!r}; "
            f"set corpus.format to one of {', '.join(FORMATS)}"
        )
    return fmt


def _walk(root: Path) -> Iterator[Path]:
    """Every path under ``root``, depth first, each folder's entries in name order (the order of
    ``sorted(root.rglob("*"))``), listed one folder at a time instead of all at once."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"cannot list the folder {root}: {exc}") from exc
    for entry in entries:
        path = Path(entry.path)
        yield path
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(path)


def _glob(pattern: Path) -> Iterator[Path]:
    """The paths that ``pattern`` matches, in name order (``**`` matches folders at any depth)."""
    return (Path(p) for p in sorted(glob.iglob(str(pattern), recursive=True)))


def _shard_files(source: Path, fmt: str, read: set[str]) -> Iterator[tuple[Path, str]]:
    """Each file of a folder or pattern that is read, with its reader's format, in name order.

    ``fmt`` set on a pattern reads every match with it; otherwise a file is
    read when its suffix's format is one of ``read``.
    """
    if is_pattern(source):
        for path in _glob(source):
            own = _file_format(path)
            if fmt not in ("auto", SHARDS) and not path.is_dir():
                yield path, fmt
            elif own in read:
                yield path, own
    else:
        for path in _walk(source):
            own = _file_format(path)
            if own in read:
                yield path, own


def _plan(source: Path, fmt: str) -> tuple[FolderContents, set[str]]:
    """What a folder or pattern read as ``fmt`` (not ``hf``) holds, and the formats of the files read from it.

    A pattern with a format set reads every file it matches as that format.

    Raises:
        InputError: it holds no file to read, or it is a pattern of text files
            (or of a saved dataset).
    """
    contents = FolderContents.scan(source)
    if is_pattern(source) and fmt not in ("auto", SHARDS):  # the format set is every match's
        if fmt not in _SHARD_SUFFIXES:
            raise InputError(f"{source} names several files, which is for the formats "
                             f"{', '.join(_SHARD_SUFFIXES)}, not {fmt}; give one file, or a folder for text or hf")
        if not contents.counts:
            raise contents.unreadable(fmt)
        return contents, set(contents.counts)
    read = _formats_read(contents, fmt)
    if read == {"text"} and is_pattern(source):
        raise InputError(f"cannot tell the format of the files {source} names; end the pattern with .jsonl, "
                         ".parquet or .csv, give a folder of text files, or set corpus.format")
    return contents, read


def corpus_files(path: str | Path, fmt: str = "auto") -> Iterator[Path]:
    """The files a corpus is read from, in reading order: the file itself, or those of a folder or pattern.

    Only their names are listed (a folder one level at a time); nothing is read.
    """
    path = Path(path)
    if not is_pattern(path) and not path.is_dir():
        yield path
        return
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "hf":
        yield from (p for p in _walk(path) if p.is_file())
        return
    _, read = _plan(path, fmt)
    yield from (p for p, _ in _shard_files(path, fmt, read) if p.is_file())


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check_kind(path: Path) -> None:
    """Refuse standard input, pipes, devices and sockets: a run must be able to read its inputs again."""
    if str(path) == "-":
        raise InputError(
            "reading from standard input ('-') is not supported: a run reads its inputs again when it "
            "resumes; save the data to a file and give its path"
        )
    if not path.exists():
        raise InputError(f"{path} does not exist; check the corpus/reference path")
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}; check that the path is readable") from exc
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(
            f"{path} is {_file_kind(mode)}, not a regular file or folder: it may never end and cannot be "
            "read again when a run resumes; save the data to a file and give its path"
        )


def _check_path(path: Path, fmt: str) -> None:
    if path.is_file():
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc


def _bounded_lines(f: IO[bytes], max_bytes: int) -> Iterator[bytes | None]:
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


def _read_jsonl(path: Path, stats: Stats, max_bytes: int) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(_bounded_lines(f, max_bytes), 1):
            if raw is None:
                stats.inc("skipped_too_long")
                logger.warning("%s:%d is longer than %d bytes; skipped without reading it", path, lineno, max_bytes)
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                stats.inc("skipped_undecodable")
                logger.warning("%s:%d is not UTF-8; skipped", path, lineno)
                continue
            except json.JSONDecodeError as exc:
                stats.inc("skipped_corrupt_line")
                logger.warning("%s:%d is not valid JSON (%s); skipped", path, lineno, exc.msg)
                continue
            if not isinstance(record, dict):
                stats.inc("skipped_not_an_object")
                logger.warning("%s:%d is JSON but not an object; skipped", path, lineno)
                continue
            yield record


def _read_parquet(path: Path, stats: Stats, max_bytes: int) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"{path} is not a readable Parquet file: {exc}") from exc
    for batch in parquet.iter_batches(batch_size=4096):
        yield from batch.to_pylist()


class _LineTooLong(Exception):
    """A CSV line longer than the record limit (already read on to its end and dropped)."""


class _BoundedTextLines:
    """The lines of a text file (``newline=""``), raising :class:`_LineTooLong` for an over-long one.

    An iterator object rather than a generator, so that the CSV reader can go
    on with the next line after one was refused.
    """

    def __init__(self, f: IO[str], max_chars: int) -> None:
        self._f = f
        self._max = max_chars

    def __iter__(self) -> _BoundedTextLines:
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
            raise _LineTooLong
        return line


def _read_csv(path: Path, stats: Stats, max_bytes: int) -> Iterator[dict[str, Any]]:
    # the limit of one field, across the lines of a quoted field (the csv module's limit is global)
    csv.field_size_limit(max_bytes)
    with path.open("r", encoding="utf-8", errors="strict", newline="") as f:
        reader = csv.DictReader(_BoundedTextLines(f, max_bytes))
        try:
            try:
                _ = reader.fieldnames  # reads the header line
            except (_LineTooLong, csv.Error) as exc:
                raise InputError(f"the header line of {path} is not a CSV header of at most {max_bytes} "
                                 "characters; check that the file is CSV") from exc
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except _LineTooLong:
                    stats.inc("skipped_too_long")
                    logger.warning("%s: a line near line %d is longer than %d characters; skipped",
                                   path, reader.line_num, max_bytes)
                    continue
                except csv.Error as exc:
                    too_long = "field larger than field limit" in str(exc)
                    stats.inc("skipped_too_long" if too_long else "skipped_corrupt_line")
                    logger.warning("%s: the record near line %d is skipped: %s", path, reader.line_num, exc)
                    continue
                yield row
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text ({exc}); re-encode it as UTF-8") from exc


def _text_files(path: Path, stats: Stats) -> Iterator[Path]:
    """The text files to read, one at a time (a folder is walked as it is read, not listed first)."""
    if path.is_file():
        yield path
        return
    for p in _walk(path):
        if p.suffix.lower() not in TEXT_SUFFIXES:
            continue
        if p.is_file():
            yield p
        elif not p.is_dir():  # a pipe, device or socket, or a broken link, named like a text file
            stats.inc("skipped_not_a_file")
            logger.warning("%s is not a regular file; skipped", p)


def _read_text_folder(path: Path, stats: Stats, max_bytes: int) -> Iterator[dict[str, Any]]:
    for file in _text_files(path, stats):
        with file.open("rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            stats.inc("skipped_too_long")
            logger.warning("%s is longer than %d bytes; skipped without reading it", file, max_bytes)
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            stats.inc("skipped_undecodable")
            logger.warning("%s is not UTF-8; skipped", file)
            continue
        rel = str(file.relative_to(path)) if path.is_dir() else file.name
        yield {"id": rel, "text": text, "path": rel}


def _read_hf(path: Path, stats: Stats, max_bytes: int) -> Iterator[dict[str, Any]]:
    from equal.extras import require

    datasets = require("datasets", "hf", "reading a saved Hugging Face dataset (corpus.format hf)")
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else next(iter(ds))
        ds = ds[split]
    yield from ds


_READERS = {
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
    "csv": _read_csv,
    "text": _read_text_folder,
    "hf": _read_hf,
}


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
        _check_kind(path)
    if fmt == "auto" and path.is_dir() and _is_saved_dataset(path):
        fmt = "hf"
    if pattern or (path.is_dir() and fmt != "hf"):
        contents, read = _plan(path, fmt)
        _report_skipped(contents, read, fmt, stats)
        if read == {"text"}:
            try:
                yield from _read_text_folder(path, stats, max_record_bytes)
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc}; check that the path is readable") from exc
        else:
            yield from _read_shards(path, _shard_files(path, fmt, read), stats, max_record_bytes)
        return
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in _READERS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    _check_path(path, fmt)
    try:
        yield from _READERS[fmt](path, stats, max_record_bytes)
    except OSError as exc:  # permissions, a vanished file, a disk error mid-read
        raise InputError(f"cannot read {path}: {exc}; check that the path is readable") from exc


def _read_shards(source: Path, files: Iterator[tuple[Path, str]], stats: Stats,
                 max_bytes: int) -> Iterator[dict[str, Any]]:
    """The records of each file in turn, each read as its format: one file is open at a time, and the next is
    found only then."""
    found = False
    for file, fmt in files:
        if not file.is_file():
            if not file.is_dir():  # a pipe, device or socket, or a broken link, named like a shard
                stats.inc("skipped_not_a_file")
                logger.warning("%s is not a regular file; skipped", file)
            continue
        found = True
        _check_path(file, fmt)
        try:
            yield from _READERS[fmt](file, stats, max_bytes)
        except OSError as exc:
            raise InputError(f"cannot read {file}: {exc}; check that the path is readable") from exc
    if not found:
        raise InputError(f"{source} has no regular file to read (those named like data files are pipes, devices or "
                         "broken links); give the file or files")


def outline(path: str | Path, fmt: str = "auto") -> str:
    """What a corpus folder or pattern was read as and what it holds, for an error message; ``""`` for a file."""
    path = Path(path)
    if not (is_pattern(path) or path.is_dir()) or (path.is_dir() and (fmt == "hf" or _is_saved_dataset(path))):
        return ""
    try:
        contents = FolderContents.scan(path)
        read = _formats_read(contents, fmt)
    except InputError as exc:
        return str(exc)
    as_what = "text files, each file one document" if read == {"text"} else f"{', '.join(sorted(read))} files"
    return f"{path} was read as {as_what}; it holds {contents.describe()}"


def content_id(text: str) -> str:
    """A stable id for a text: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def looks_binary(text: str) -> bool:
    """True when a decoded string is mostly control characters, NUL included (a binary blob).

    A few stray NULs in real text do not make it binary: :func:`read_documents`
    drops them and counts ``repaired_nul``.
    """
    sample = text[:4096]
    controls = sum(1 for ch in sample if ch not in "\n\r\t" and unicodedata.category(ch) == "Cc")
    return controls > 0.1 * len(sample)


def _count(stats: Stats, repairs: set[str]) -> None:
    for name in sorted(repairs):
        stats.inc(name)


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
    requested = fmt
    if fmt == "auto":
        if not is_pattern(path) or path.exists():
            _check_kind(path)  # a device or pipe is named as such, not as a file of unknown format
        fmt = detect_format(path)
    if fmt == "text" and id_field is None:
        id_field = "id"  # text files are named by their relative path
    found_field = False
    n_records = 0
    # taken: every Document.id given out, record and passage ids alike; split_sources: the ids of records
    # split into passages, which are not Document ids themselves. An id in either is not given out again.
    with SeenIds() as taken, SeenIds() as split_sources:
        for record in read_records(path, requested, stats, max_record_bytes=max_record_bytes(max_document_chars)):
            n_records += 1
            if text_field not in record:
                stats.inc("skipped_missing_field")
                continue
            found_field = True
            text = record[text_field]
            if not isinstance(text, str):
                stats.inc("skipped_wrong_type")
                continue
            if len(text.strip()) < min_chars:
                stats.inc("skipped_empty")
                continue
            if max_document_chars is not None and len(text) > max_document_chars:
                stats.inc("skipped_too_long")
                logger.warning("a document of %d characters is over corpus.max_document_chars=%d; skipped",
                               len(text), max_document_chars)
                continue
            if looks_binary(text):
                stats.inc("skipped_binary")
                continue
            text, repairs = sanitize(text)
            if len(text.strip()) < min_chars:
                stats.inc("skipped_empty")
                continue
            if id_field:
                raw_id = record.get(id_field)
                if raw_id is None or raw_id == "":
                    stats.inc("skipped_missing_id")
                    continue
                source_id, id_repairs = sanitize(str(raw_id))
                repairs |= id_repairs
                if not source_id:
                    stats.inc("skipped_missing_id")
                    continue
            else:
                source_id = content_id(text)
            if source_id in taken or source_id in split_sources:
                stats.inc("skipped_duplicate_id")
                logger.warning("the id %r is already taken by an earlier record or passage; skipped", source_id)
                continue
            passages = [text.strip()] if max_passage_chars is None else split_passages(text, max_passage_chars)
            ids = [source_id] if len(passages) == 1 else [f"{source_id}#p{i}" for i in range(len(passages))]
            clash = next((pid for pid in ids if pid in taken), None) if len(ids) > 1 else None  # one: checked above
            if clash is not None:
                stats.inc("skipped_duplicate_id")
                logger.warning("the record %r is split into passages, and the passage id %r is already the id of "
                               "an earlier record; skipped (give that record another id to keep both)",
                               source_id, clash)
                continue
            taken.update(ids)
            if len(ids) > 1:
                split_sources.add(source_id)
            metadata: dict[str, Any] = {}
            for key in keep_fields:
                if key in record:
                    metadata[key], field_repairs = sanitize_value(record[key])
                    repairs |= field_repairs
            _count(stats, repairs)
            stats.inc("documents_read")
            for pid, passage in zip(ids, passages):
                stats.inc("passages")
                yield Document(id=pid, text=passage, source_id=source_id, metadata=dict(metadata))
    if n_records and not found_field:
        if fmt == "text" and path.is_dir():  # the field names a field of data records, not of text files
            raise InputError(
                f"{outline(path, requested)}. corpus.text_field {text_field!r} names a field of data records, and "
                "a text file's document is in the field 'text': point corpus.path at the data files (JSONL, "
                "Parquet or CSV; convert others to one of those), or unset corpus.text_field to read the text files"
            )
        raise InputError(
            f"no record of {path} has the text field {text_field!r}; "
            "set corpus.text_field (--text-field) to the field that holds the text"
        )

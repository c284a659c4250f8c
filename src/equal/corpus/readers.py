"""Streaming readers for corpus files: JSONL, Parquet, CSV, text folders, HF datasets.

Each reader yields plain records (dicts); :func:`read_documents` turns them
into :class:`~equal.records.Document` passages. Bad records never stop a
read: each one is skipped and counted with its reason in ``stats``
(``skipped_corrupt_line``, ``skipped_missing_field``, ``skipped_empty``, ...).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from equal.corpus.passages import split_passages
from equal.errors import InputError
from equal.records import Document
from equal.stats import Stats

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


def detect_format(path: Path) -> str:
    """Guess the format of ``path`` from its suffix or layout."""
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return "hf"
        return "text"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {path} from its suffix {path.suffix!r}; "
            f"set corpus.format to one of {', '.join(FORMATS)}"
        )
    return fmt


def _check_path(path: Path, fmt: str) -> None:
    if not path.exists():
        raise InputError(f"{path} does not exist; check the corpus/reference path")
    if path.is_dir() and fmt in ("jsonl", "parquet", "csv"):
        raise InputError(f"{path} is a folder but the format is {fmt}; give the file inside it, "
                         "or set the format to text (a folder of .txt/.md files) or hf (a saved dataset)")
    if path.is_file():
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc


def _read_jsonl(path: Path, stats: Stats) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
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


def _read_parquet(path: Path, stats: Stats) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"{path} is not a readable Parquet file: {exc}") from exc
    for batch in parquet.iter_batches(batch_size=4096):
        yield from batch.to_pylist()


def _read_csv(path: Path, stats: Stats) -> Iterator[dict[str, Any]]:
    csv.field_size_limit(sys.maxsize)
    with path.open("r", encoding="utf-8", errors="strict", newline="") as f:
        try:
            yield from csv.DictReader(f)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text ({exc}); re-encode it as UTF-8") from exc


def _read_text_folder(path: Path, stats: Stats) -> Iterator[dict[str, Any]]:
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
    )
    for file in files:
        data = file.read_bytes()
        if b"\x00" in data:
            stats.inc("skipped_binary")
            logger.warning("%s looks binary; skipped", file)
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            stats.inc("skipped_undecodable")
            logger.warning("%s is not UTF-8; skipped", file)
            continue
        rel = str(file.relative_to(path)) if path.is_dir() else file.name
        yield {"id": rel, "text": text, "path": rel}


def _read_hf(path: Path, stats: Stats) -> Iterator[dict[str, Any]]:
    try:
        import datasets
    except ImportError as exc:
        raise InputError("reading a Hugging Face dataset needs `pip install datasets`") from exc
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


def read_records(path: str | Path, fmt: str = "auto", stats: Stats | None = None) -> Iterator[dict[str, Any]]:
    """Yield the raw records of a corpus file or folder.

    Args:
        path: a file (``.jsonl``, ``.parquet``, ``.csv``, ``.txt``) or a folder
            (text files, or a dataset saved with ``datasets.save_to_disk``).
        fmt: one of ``auto``, ``jsonl``, ``parquet``, ``csv``, ``text``, ``hf``.
        stats: counters that receive skip reasons.

    Raises:
        InputError: the path does not exist, cannot be read or has an unknown format.
    """
    path = Path(path)
    stats = stats if stats is not None else Stats()
    if not path.exists():
        raise InputError(f"{path} does not exist; check the corpus/reference path")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in _READERS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    _check_path(path, fmt)
    try:
        yield from _READERS[fmt](path, stats)
    except OSError as exc:  # permissions, a vanished file, a disk error mid-read
        raise InputError(f"cannot read {path}: {exc}; check that the path is readable") from exc


def content_id(text: str) -> str:
    """A stable id for a text: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def looks_binary(text: str) -> bool:
    """True when a decoded string is mostly control characters (a binary blob)."""
    if "\x00" in text:
        return True
    sample = text[:4096]
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t")
    return controls > 0.1 * len(sample)


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

    Args:
        path: corpus file or folder (see :func:`read_records`).
        text_field: the field that holds the document text.
        id_field: the field that holds a document id; ``None`` uses a content hash.
        fmt: the corpus format, or ``auto``.
        max_passage_chars: split longer texts into passages on paragraph
            boundaries; ``None`` keeps each record whole.
        min_chars: texts shorter than this (after stripping) are skipped as empty.
        max_document_chars: longer texts are skipped as ``skipped_too_long``.
        keep_fields: record fields copied into ``Document.metadata``.
        stats: counters that receive ``documents_read``, ``passages`` and skip reasons.

    Yields:
        One :class:`Document` per passage, in corpus order.
    """
    stats = stats if stats is not None else Stats()
    path = Path(path)
    if fmt == "auto" and path.exists():
        fmt = detect_format(path)
    if fmt == "text" and id_field is None:
        id_field = "id"  # text files are named by their relative path
    seen: set[str] = set()
    found_field = False
    n_records = 0
    for record in read_records(path, fmt, stats):
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
        if id_field:
            raw_id = record.get(id_field)
            if raw_id is None or raw_id == "":
                stats.inc("skipped_missing_id")
                continue
            source_id = str(raw_id)
        else:
            source_id = content_id(text)
        if source_id in seen:
            stats.inc("skipped_duplicate_id")
            continue
        seen.add(source_id)
        stats.inc("documents_read")
        metadata = {k: record[k] for k in keep_fields if k in record}
        passages = [text.strip()] if max_passage_chars is None else split_passages(text, max_passage_chars)
        for i, passage in enumerate(passages):
            pid = source_id if len(passages) == 1 else f"{source_id}#p{i}"
            stats.inc("passages")
            yield Document(id=pid, text=passage, source_id=source_id, metadata=dict(metadata))
    if n_records and not found_field:
        raise InputError(
            f"no record of {path} has the text field {text_field!r}; "
            "set corpus.text_field (--text-field) to the field that holds the text"
        )

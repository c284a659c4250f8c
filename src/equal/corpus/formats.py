"""One reader per corpus format: JSONL, Parquet, CSV, text files, a saved Hugging Face dataset.

A reader takes a file (a folder for text files and datasets) and the most
bytes a record may take, and yields its records as plain dicts. A record it
cannot read does not stop it: it yields a :class:`Skip` saying why, and goes
on. A file it cannot read at all is an :class:`InputError`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from equal.corpus.bounded import BoundedTextLines, LineTooLong, bounded_lines
from equal.corpus.shards import text_files
from equal.corpus.skips import Skip
from equal.errors import InputError

#: The records of a file, and a :class:`Skip` for each record that cannot be read.
Records = Iterator[dict[str, Any] | Skip]
#: A reader: the path and the most bytes one record may take.
Reader = Callable[[Path, int], Records]


def read_jsonl(path: Path, max_bytes: int) -> Records:
    """One record per line; blank lines are passed over, other lines that hold no JSON object are skips."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(bounded_lines(f, max_bytes), 1):
            if raw is None:
                yield Skip("skipped_too_long", "%s:%d is longer than %d bytes; skipped without reading it",
                           (path, lineno, max_bytes))
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield Skip("skipped_undecodable", "%s:%d is not UTF-8; skipped", (path, lineno))
                continue
            except json.JSONDecodeError as exc:
                yield Skip("skipped_corrupt_line", "%s:%d is not valid JSON (%s); skipped", (path, lineno, exc.msg))
                continue
            if not isinstance(record, dict):
                yield Skip("skipped_not_an_object", "%s:%d is JSON but not an object; skipped", (path, lineno))
                continue
            yield record


def read_parquet(path: Path, max_bytes: int) -> Records:
    """The rows of a Parquet file, a batch of 4,096 at a time."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"{path} is not a readable Parquet file: {exc}") from exc
    for batch in parquet.iter_batches(batch_size=4096):
        yield from batch.to_pylist()


def read_csv(path: Path, max_bytes: int) -> Records:
    """The rows of a CSV file with a header line; a line or field over ``max_bytes`` characters is a skip."""
    # the limit of one field, across the lines of a quoted field (the csv module's limit is global)
    csv.field_size_limit(max_bytes)
    with path.open("r", encoding="utf-8", errors="strict", newline="") as f:
        reader = csv.DictReader(BoundedTextLines(f, max_bytes))
        try:
            try:
                _ = reader.fieldnames  # reads the header line
            except (LineTooLong, csv.Error) as exc:
                raise InputError(f"the header line of {path} is not a CSV header of at most {max_bytes} "
                                 "characters; check that the file is CSV") from exc
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except LineTooLong:
                    yield Skip("skipped_too_long", "%s: a line near line %d is longer than %d characters; skipped",
                               (path, reader.line_num, max_bytes))
                    continue
                except csv.Error as exc:
                    too_long = "field larger than field limit" in str(exc)
                    yield Skip("skipped_too_long" if too_long else "skipped_corrupt_line",
                               "%s: the record near line %d is skipped: %s", (path, reader.line_num, exc))
                    continue
                yield row
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text ({exc}); re-encode it as UTF-8") from exc


def read_text(path: Path, max_bytes: int) -> Records:
    """A text file, or every text file of a folder, as one record each: ``id`` and ``path`` its relative path."""
    for file in text_files(path):
        if isinstance(file, Skip):
            yield file
            continue
        with file.open("rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            yield Skip("skipped_too_long", "%s is longer than %d bytes; skipped without reading it", (file, max_bytes))
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            yield Skip("skipped_undecodable", "%s is not UTF-8; skipped", (file,))
            continue
        rel = str(file.relative_to(path)) if path.is_dir() else file.name
        yield {"id": rel, "text": text, "path": rel}


def read_hf(path: Path, max_bytes: int) -> Records:
    """The rows of a dataset saved with ``datasets.save_to_disk`` (of a dataset dict: its ``train`` split, else
    its first)."""
    from equal.extras import require

    datasets = require("datasets", "hf", "reading a saved Hugging Face dataset (corpus.format hf)")
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else next(iter(ds))
        ds = ds[split]
    yield from ds


#: The reader of each corpus format.
READERS: dict[str, Reader] = {
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "csv": read_csv,
    "text": read_text,
    "hf": read_hf,
}

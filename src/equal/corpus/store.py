"""The corpus's passages in one memory-mapped Arrow IPC file, read back as a ``Sequence[Document]``.

Ten million passages of 2 KB are 20 GB of text: more than a list of
:class:`~equal.records.Document` can hold on one machine. While the corpus
is read, passages go to ``passages-<key>.arrow`` under the cache directory
in record batches (at most :data:`BATCH_ROWS` rows or about
:data:`BATCH_BYTES` of text each); the file is then memory-mapped, so a
passage's text is paged in from disk when it is read and the process itself
holds only the batches' row offsets. :class:`PassageStore` builds one
``Document`` on demand (``store[i]``), streams them batch by batch
(iteration), and hands the embedding stage its texts in chunks
(:attr:`PassageStore.texts`).

Columns: ``id``, ``text``, ``source_id`` (Arrow large strings) and
``metadata``, the kept fields (label, stored pairs) as JSON text; a value
JSON cannot hold (bytes, a timestamp of a Parquet column) is kept as its
``str()``.

Reuse. ``key`` is a fingerprint of the corpus files (path, size and
modification time of each; their contents are not read again) and of every
setting that decides the passages (:func:`store_key`); another corpus, an
edited file or another setting names another file. Like the embedding
store (:mod:`equal.embedding.store`), the file is built under a file lock
(``passages-<key>.lock``), written to a temporary name and renamed into
place when complete, and only then is its JSON sidecar written: the sidecar
is the mark of a finished store. It records the rows, the file's size, which
metadata fields occur and the reading counters (``documents_read``,
``passages``, ``skipped_*``), which a run that reuses the store adds to its
own ``stats.json`` as if it had read the corpus. A store without its
sidecar (a killed build), or whose sidecar does not describe it (a truncated
file), is built again.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from equal.errors import InputError
from equal.files import atomic_file, atomic_write_text, disk_full, is_disk_full, locked
from equal.records import Document
from equal.stats import Stats

logger = logging.getLogger(__name__)

FORMAT = 1
#: Rows of one record batch at most; a batch also ends once it holds :data:`BATCH_BYTES` of text.
BATCH_ROWS = 4096
BATCH_BYTES = 16 * 2**20
SCHEMA = pa.schema([("id", pa.large_string()), ("text", pa.large_string()),
                    ("source_id", pa.large_string()), ("metadata", pa.large_string())])
_NO_METADATA = "{}"


def store_key(files: Iterable[Path], settings: dict[str, Any]) -> str:
    """A fingerprint of the corpus ``files`` (path, size, modification time) and the reading ``settings``.

    ``settings`` holds every value that decides the passages (JSON-able);
    the store's format and equal's version are added, so a reader that
    changed never reuses passages another version cut.
    """
    from equal import __version__

    digest = hashlib.blake2b(json.dumps({"format": FORMAT, "equal": __version__, **settings}, sort_keys=True,
                                        default=str).encode(), digest_size=16)
    for file in files:
        try:
            st = file.stat()
            identity = f"\x00{file.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}"
        except OSError:  # standard input or a vanished file: reading it says what is wrong
            identity = f"\x00{file}"
        digest.update(identity.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def store_path(directory: Path, key: str) -> Path:
    """Where the passage store of ``key`` lives under ``directory``."""
    return directory / f"passages-{key}.arrow"


def open_or_build(path: Path, read: Callable[[Stats], Iterable[Document]], stats: Stats) -> PassageStore:
    """The finished store at ``path``, or one built from ``read(counters)`` and then opened.

    ``read`` yields the passages in corpus order and counts what it reads
    and skips in the ``Stats`` it is given; those counters are added to
    ``stats`` whether the store is built now or was built by an earlier run.

    Raises:
        InputError: whatever ``read`` raises (the store is left unfinished).
        DiskFull: the disk filled up while the store was written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path, "reading the same corpus"):
        store = _open_finished(path)
        if store is None:
            counters = Stats()
            _build(path, read(counters), counters)
            store = _open_finished(path)
            if store is None:  # just written and synced: only a disk fault gets here
                raise InputError(f"the passage store {path} could not be read back after it was written")
        else:
            logger.info("reusing the passages of %s (%d passages)", path.name, len(store))
    stats.update(store.counters)
    return store


class PassageTexts(Sequence[str]):
    """The passages' texts, read from the store: ``len``, an index, a slice (a list) or streamed by batch."""

    def __init__(self, store: PassageStore) -> None:
        self._store = store

    def __len__(self) -> int:
        return len(self._store)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return self._store.column_slice("text", index)
        batch, row = self._store.locate(index)
        return batch.column(1)[row].as_py()

    def __iter__(self) -> Iterator[str]:
        return self._store.column("text")

    def nul_prefixed_utf8(self) -> Iterator[pa.Buffer]:
        """Each batch's texts as one buffer: every text in UTF-8 after a NUL byte, in order.

        What :func:`equal.embedding.store.fingerprint` hashes, without a
        Python string per text.
        """
        for batch in self._store.batches:
            joined = pc.binary_join_element_wise(pa.scalar("", pa.large_string()), batch.column(1),
                                                 pa.scalar("\x00", pa.large_string()))
            offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64)[joined.offset:joined.offset + len(joined) + 1]
            yield joined.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


class PassageStore(Sequence[Document]):
    """A finished passage store, memory-mapped and read-only; use :func:`open_or_build` to get one.

    Attributes:
        path: the Arrow IPC file.
        counters: the reading counters recorded when it was built.
        metadata_fields: the kept fields that at least one passage has.
    """

    def __init__(self, path: Path, counters: dict[str, int | float], metadata_fields: frozenset[str]) -> None:
        self.path = path
        self.counters = counters
        self.metadata_fields = metadata_fields
        self._file = pa.memory_map(str(path), "r")
        reader = pa.ipc.open_file(self._file)
        if reader.schema != SCHEMA:
            raise ValueError(f"its schema is {reader.schema}, not {SCHEMA}")
        # zero-copy views into the mapping: only their offsets live in this process
        self.batches: list[pa.RecordBatch] = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        self._starts: list[int] = []
        total = 0
        for batch in self.batches:
            self._starts.append(total)
            total += batch.num_rows
        self._len = total
        self.texts = PassageTexts(self)

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> Document: ...

    @overload
    def __getitem__(self, index: slice) -> list[Document]: ...

    def __getitem__(self, index: int | slice) -> Document | list[Document]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        batch, row = self.locate(index)
        ids, texts, sources, metadata = batch.columns
        return Document(ids[row].as_py(), texts[row].as_py(), sources[row].as_py(), _metadata(metadata[row].as_py()))

    def __iter__(self) -> Iterator[Document]:
        for batch in self.batches:
            columns = [column.to_pylist() for column in batch.columns]
            for doc_id, text, source_id, metadata in zip(*columns):
                yield Document(doc_id, text, source_id, _metadata(metadata))

    def column(self, name: str) -> Iterator[Any]:
        """The values of column ``name`` (``id``, ``text``, ``source_id``), streamed batch by batch."""
        for batch in self.batches:
            yield from batch.column(name).to_pylist()

    def locate(self, index: int) -> tuple[pa.RecordBatch, int]:
        """The batch that holds passage ``index`` and its row there (a binary search over the batches' starts)."""
        if not isinstance(index, int):
            index = int(index)  # numpy integers from the bandit's index arrays
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f"passage {index} of a store of {self._len}")
        b = bisect.bisect_right(self._starts, index) - 1
        return self.batches[b], index - self._starts[b]

    def column_slice(self, name: str, index: slice) -> list[Any]:
        """The values of column ``name`` for the rows of ``index`` (a contiguous slice reads only its batches)."""
        start, stop, step = index.indices(self._len)
        if step != 1:
            return [self.column_slice(name, slice(i, i + 1))[0] for i in range(start, stop, step)]
        out: list[Any] = []
        b = max(0, bisect.bisect_right(self._starts, start) - 1)
        while start < stop and b < len(self.batches):
            first = self._starts[b]
            batch = self.batches[b]
            lo, hi = start - first, min(stop - first, batch.num_rows)
            if hi > lo:
                out += batch.column(name).slice(lo, hi - lo).to_pylist()
                start = first + hi
            b += 1
        return out

    def positions(self, ids: Iterable[str]) -> dict[str, int]:
        """The index of each of ``ids`` that the store holds, from one vectorised pass over the id column."""
        wanted = pa.array(sorted(set(ids)), pa.large_string())
        out: dict[str, int] = {}
        if not len(wanted):
            return out
        for start, batch in zip(self._starts, self.batches):
            hits = pc.indices_nonzero(pc.is_in(batch.column(0), value_set=wanted)).to_pylist()
            if hits:
                found = batch.column(0).take(pa.array(hits)).to_pylist()
                out.update((doc_id, start + row) for doc_id, row in zip(found, hits))
        return out


def _metadata(text: str) -> dict[str, Any]:
    return {} if text == _NO_METADATA else json.loads(text)




def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _open_finished(path: Path) -> PassageStore | None:
    """The store at ``path`` if its sidecar marks it finished and describes it; ``None`` to build it again."""
    sidecar = _sidecar(path)
    if not path.exists() or not sidecar.exists():
        return None  # never built, or killed before it was finished
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"its sidecar {sidecar.name} is not of format {FORMAT}")
        if meta.get("bytes") != path.stat().st_size:
            raise ValueError(f"it is {path.stat().st_size} bytes long, not {meta.get('bytes')}")
        store = PassageStore(path, dict(meta["counters"]), frozenset(meta["metadata_fields"]))
        if len(store) != meta.get("rows"):
            raise ValueError(f"it holds {len(store)} passages, not {meta.get('rows')}")
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        logger.warning("the passage store %s cannot be used (%s); the corpus is read into it again", path, exc)
        sidecar.unlink(missing_ok=True)  # the file is replaced by a rename, never truncated under a reader
        return None
    return store


def _build(path: Path, documents: Iterable[Document], counters: Stats) -> None:
    """Write ``documents`` to ``path`` batch by batch, then the sidecar that marks it finished."""
    sidecar = _sidecar(path)
    sidecar.unlink(missing_ok=True)  # the file is about to change: no sidecar may describe the old one
    fields: set[str] = set()
    rows = 0
    try:
        with atomic_file(path, f"the passage store {path.name}") as tmp, tmp.open("wb") as f:
            with pa.ipc.new_file(f, SCHEMA) as writer:
                batch: list[list[str]] = [[], [], [], []]
                held = 0
                for doc in documents:
                    fields.update(doc.metadata)
                    batch[0].append(doc.id)
                    batch[1].append(doc.text)
                    batch[2].append(doc.source_id)
                    batch[3].append(json.dumps(doc.metadata, ensure_ascii=False, default=str)
                                    if doc.metadata else _NO_METADATA)
                    held += len(doc.text)
                    rows += 1
                    if len(batch[0]) >= BATCH_ROWS or held >= BATCH_BYTES:
                        writer.write_batch(_record_batch(batch))
                        batch, held = [[], [], [], []], 0
                if batch[0]:
                    writer.write_batch(_record_batch(batch))
            f.flush()
            os.fsync(f.fileno())  # the passages reach the disk before the sidecar says they are there
        atomic_write_text(sidecar, json.dumps({"format": FORMAT, "rows": rows, "bytes": path.stat().st_size,
                                               "metadata_fields": sorted(fields),
                                               "counters": counters.as_dict()}))
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(path.parent, f"the passage store {path.name}") from exc
        raise


def _record_batch(columns: list[list[str]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(c, pa.large_string()) for c in columns], schema=SCHEMA)

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

Reuse. ``key`` is a fingerprint of the corpus files and of every setting
that decides the passages (:func:`store_key`): another corpus, another
setting or an edited file names another file. A corpus file is known by its
path, size and modification time, and its contents are not read again,
unless ``corpus.verify: content`` asks for a hash of every byte too (an
edit that keeps a file's size and modification time is only seen then).
Like the embedding store (:mod:`equal.embedding.store`), the file is built
under a file lock (``passages-<key>.lock``), written to a temporary name and
renamed into place when complete, and only then is its JSON sidecar
written: the sidecar is the mark of a finished store. It records the rows,
the file's size, which metadata fields occur, the reading counters
(``documents_read``, ``passages``, ``skipped_*``), which a run that reuses
the store adds to its own ``stats.json`` as if it had read the corpus, and a
blake2b checksum of every record batch. A store without its sidecar (a
killed build) is built again.

Integrity. Each time a store is reused, its sidecar, size, schema and batch
layout are checked; its checksums are checked, every batch, when the file's
own size, modification time, change time or inode are not those recorded
when it was last checked (it was written to, copied or replaced since), and
on every reuse with ``verify="content"``. A store that fails is renamed to
``NAME.damaged-<timestamp>`` with its sidecar (never deleted), a warning
names it, and the corpus is read into it again, before any of its text is
embedded or sent to an LLM. Damage that leaves the file's timestamps alone
(a failing disk) is only caught with ``verify="content"``. Checking reads the
whole file once (about 0.3 s for 100,000 passages of 2 KB), which a rerun of
an unchanged store skips.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from equal.errors import InputError, StorageError
from equal.files import atomic_file, atomic_write_text, disk_full, is_disk_full, locked, set_aside
from equal.records import Document
from equal.stats import Stats

logger = logging.getLogger(__name__)

FORMAT = 2  # the sidecar holds a checksum of every batch; the first format had none
CHECKSUM = "blake2b-128"
#: ``stat``: check the checksums when the store's file changed since they were last checked; ``content``: always
Verify = Literal["stat", "content"]
_HASH_BLOCK = 2**20  # bytes of a corpus file hashed at a time
#: Rows of one record batch at most; a batch also ends once it holds :data:`BATCH_BYTES` of text.
BATCH_ROWS = 4096
BATCH_BYTES = 16 * 2**20
SCHEMA = pa.schema([("id", pa.large_string()), ("text", pa.large_string()),
                    ("source_id", pa.large_string()), ("metadata", pa.large_string())])
_NO_METADATA = "{}"


def store_key(files: Iterable[Path], settings: dict[str, Any], *, contents: bool = False) -> str:
    """A fingerprint of the corpus ``files`` (path, size, modification time) and the reading ``settings``.

    ``settings`` holds every value that decides the passages (JSON-able);
    the store's format and equal's version are added, so a reader that
    changed never reuses passages another version cut. With ``contents``
    every byte of every file is hashed too, so an edit that kept a file's
    size and modification time still names another store (and the key
    differs from the one without it).
    """
    from equal import __version__

    digest = hashlib.blake2b(json.dumps({"format": FORMAT, "equal": __version__, "contents": contents, **settings},
                                        sort_keys=True, default=str).encode(), digest_size=16)
    for file in files:
        try:
            st = file.stat()
            identity = f"\x00{file.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}"
        except OSError:  # standard input or a vanished file: reading it says what is wrong
            identity = f"\x00{file}"
        digest.update(identity.encode("utf-8", "surrogatepass"))
        if contents:
            digest.update(_file_digest(file).encode())
    return digest.hexdigest()


def _file_digest(file: Path) -> str:
    """The blake2b digest of ``file``'s bytes, read a block at a time; empty when it cannot be read."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with file.open("rb") as f:
            while block := f.read(_HASH_BLOCK):
                digest.update(block)
    except OSError:  # reading the corpus says what is wrong with it
        return ""
    return digest.hexdigest()


def store_path(directory: Path, key: str) -> Path:
    """Where the passage store of ``key`` lives under ``directory``."""
    return directory / f"passages-{key}.arrow"


def open_or_build(path: Path, read: Callable[[Stats], Iterable[Document]], stats: Stats, *,
                  verify: Verify = "stat") -> PassageStore:
    """The finished store at ``path``, or one built from ``read(counters)`` and then opened.

    ``read`` yields the passages in corpus order and counts what it reads
    and skips in the ``Stats`` it is given; those counters are added to
    ``stats`` whether the store is built now or was built by an earlier run.
    A store that fails its checks (see the module's "Integrity"; ``verify``
    ``content`` checks every checksum) is set aside and built again.

    Raises:
        InputError: whatever ``read`` raises (the store is left unfinished).
        DiskFull: the disk filled up while the store was written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path, "reading the same corpus"):
        store = _open_finished(path, verify)
        if store is None:
            counters = Stats()
            _build(path, read(counters), counters)
            store = _open_finished(path, "stat")
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


class _Damaged(Exception):
    """Why a finished store cannot be trusted (internal: the store is set aside and built again)."""


def _stamp(path: Path) -> list[int]:
    """What changes whenever ``path`` is written to, copied or replaced: size, modification and change
    times, inode and device."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


@dataclass(frozen=True, slots=True)
class _Meta:
    """The sidecar of a finished store.

    Attributes:
        rows: passages in the store.
        size: the store's size in bytes.
        metadata_fields: the kept fields that at least one passage has.
        counters: the reading counters of the build.
        chunks: each record batch's rows and checksum, in order.
        checked: the :func:`_stamp` of the file when its checksums last matched.
    """

    rows: int
    size: int
    metadata_fields: list[str]
    counters: dict[str, int | float]
    chunks: list[tuple[int, str]]
    checked: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "rows": self.rows, "bytes": self.size, "metadata_fields": self.metadata_fields,
                "counters": self.counters, "checksum": CHECKSUM, "chunks": [list(c) for c in self.chunks],
                "checked": self.checked}

    @classmethod
    def from_json(cls, meta: Any) -> _Meta:
        """Raises: _Damaged: ``meta`` is not a sidecar of this format with values of the right types."""
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("checksum") != CHECKSUM:
            raise _Damaged(f"its sidecar is not of format {FORMAT}")
        rows: Any = meta.get("rows")
        size: Any = meta.get("bytes")
        fields, counters, chunks, checked = (meta.get(key) for key in ("metadata_fields", "counters", "chunks",
                                                                       "checked"))
        if not (_count(rows) and _count(size) and isinstance(fields, list)
                and all(isinstance(f, str) for f in fields)):
            raise _Damaged("its sidecar's rows, size or fields are unreadable")
        if not (isinstance(counters, dict) and all(isinstance(k, str) and _number(v) for k, v in counters.items())):
            raise _Damaged("its sidecar's counters are not numbers")
        if not (isinstance(chunks, list) and all(isinstance(c, list) and len(c) == 2 and _count(c[0])
                                                 and isinstance(c[1], str) for c in chunks)):
            raise _Damaged("its sidecar's checksums are unreadable")
        if not (isinstance(checked, list) and all(_count(v) for v in checked)):
            raise _Damaged("its sidecar's record of the last check is unreadable")
        return cls(rows, size, fields, counters, [(c[0], c[1]) for c in chunks], checked)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _batch_digest(batch: pa.RecordBatch) -> str:
    """The blake2b checksum of a batch's rows: each column's length, nulls, offsets and the bytes they span."""
    digest = hashlib.blake2b(digest_size=16)
    for column in batch.columns:
        digest.update(f"{len(column)}\x00{column.null_count}\x00{column.offset}".encode())
        _, offsets, data = column.buffers()
        ends = np.frombuffer(offsets, dtype=np.int64)[column.offset:column.offset + len(column) + 1]
        digest.update(ends.tobytes())
        if data is not None and len(ends) and ends[-1] > ends[0]:
            digest.update(data.slice(int(ends[0]), int(ends[-1] - ends[0])))
    return digest.hexdigest()


def _open_finished(path: Path, verify: Verify) -> PassageStore | None:
    """The store at ``path`` if its sidecar marks it finished and it passes its checks; ``None`` to build it.

    A damaged store is set aside (``NAME.damaged-<timestamp>``, with its sidecar) and a warning names it.
    """
    sidecar = _sidecar(path)
    if not path.exists() or not sidecar.exists():
        return None  # never built, or killed before it was finished
    try:
        return _open_checked(path, sidecar, verify)
    except _Damaged as exc:
        aside = set_aside(path, sidecar)
        logger.warning("the passage store %s is damaged (%s); it was moved to %s (delete that file and its sidecar "
                       "when you no longer need them) and the corpus is read into it again", path, exc, aside.name)
        return None


def _open_checked(path: Path, sidecar: Path, verify: Verify) -> PassageStore:
    """Raises: _Damaged: the sidecar, the file's size, schema or batches, or a checksum do not match."""
    try:
        meta = _Meta.from_json(json.loads(sidecar.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise _Damaged(f"its sidecar {sidecar.name} is unreadable: {exc}") from None
    size = path.stat().st_size
    if size != meta.size:
        raise _Damaged(f"it is {size} bytes long, not {meta.size}")
    try:
        store = PassageStore(path, meta.counters, frozenset(meta.metadata_fields))
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise _Damaged(f"it cannot be read as a passage store: {exc}") from None
    if len(store) != meta.rows or [b.num_rows for b in store.batches] != [rows for rows, _ in meta.chunks]:
        raise _Damaged(f"it holds {len(store)} passages in {len(store.batches)} batches, not the {meta.rows} in "
                       f"{len(meta.chunks)} batches its sidecar records")
    stamp = _stamp(path)
    if verify == "content" or stamp != meta.checked:
        _verify_checksums(store, meta.chunks)
        if stamp != meta.checked:
            _record(sidecar, _Meta(meta.rows, meta.size, meta.metadata_fields, meta.counters, meta.chunks, stamp))
    return store


def _verify_checksums(store: PassageStore, chunks: list[tuple[int, str]]) -> None:
    first = 0
    for batch, (rows, digest) in zip(store.batches, chunks):
        try:
            actual = _batch_digest(batch)
        except (ValueError, IndexError, pa.ArrowException) as exc:  # offsets that point outside the file
            raise _Damaged(f"passages {first}-{first + rows - 1} cannot be read for their checksum: {exc}") from None
        if actual != digest:
            raise _Damaged(f"passages {first}-{first + rows - 1} do not match their checksum")
        first += rows


def _record(sidecar: Path, meta: _Meta) -> None:
    """Write ``meta`` as the sidecar; a sidecar that cannot be rewritten only costs another check next time."""
    try:
        atomic_write_text(sidecar, json.dumps(meta.to_json()))
    except (OSError, StorageError) as exc:
        logger.info("cannot record the check of %s (%s); it is checked again next time", sidecar, exc)


def _build(path: Path, documents: Iterable[Document], counters: Stats) -> None:
    """Write ``documents`` to ``path`` batch by batch, then the sidecar that marks it finished."""
    sidecar = _sidecar(path)
    sidecar.unlink(missing_ok=True)  # the file is about to change: no sidecar may describe the old one
    fields: set[str] = set()
    chunks: list[tuple[int, str]] = []
    rows = 0

    def write(writer: pa.ipc.RecordBatchFileWriter, columns: list[list[str]]) -> None:
        batch = _record_batch(columns)
        chunks.append((batch.num_rows, _batch_digest(batch)))
        writer.write_batch(batch)

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
                        write(writer, batch)
                        batch, held = [[], [], [], []], 0
                if batch[0]:
                    write(writer, batch)
            f.flush()
            os.fsync(f.fileno())  # the passages reach the disk before the sidecar says they are there
        meta = _Meta(rows, path.stat().st_size, sorted(fields), counters.as_dict(), chunks, _stamp(path))
        atomic_write_text(sidecar, json.dumps(meta.to_json()))
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(path.parent, f"the passage store {path.name}") from exc
        raise


def _record_batch(columns: list[list[str]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(c, pa.large_string()) for c in columns], schema=SCHEMA)

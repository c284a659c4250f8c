"""Document embeddings in one memory-mapped ``.npy`` file, filled in corpus order and resumable.

A million 384-d vectors are 1.5 GB: they stay on disk and are paged in as
k-means and the bandit read them. The embed stage writes chunk after chunk
and records how far it got in a JSON sidecar after each one, so a killed
run continues from the last finished chunk. The file name holds a
fingerprint of the model and the texts, so another corpus or model never
reads stale vectors, and runs that share ``extraction.cache_dir`` share it.

Integrity. The sidecar records a blake2b checksum of every chunk written.
Before a partial store is resumed or a finished one reused, its header, its
size and every checksum are verified; a store that fails (truncated, zeroed,
an unreadable sidecar) is renamed to ``NAME.damaged-<timestamp>`` (never
deleted), a warning names it, and the corpus is embedded again. A store
written before checksums were recorded is checked as far as it can be
(header, size, every recorded row finite and of unit norm, which every
embedder returns); if it passes, its checksums are recorded from then on,
otherwise it is set aside and rebuilt the same way.

Disk. The file's blocks are reserved (``posix_fallocate``) before any
vector is written into the mapping, so a full disk is a
:class:`~equal.errors.DiskFull` error that says how much space the store
needs, not a SIGBUS.

Concurrency. Creating and filling a store happens under a file lock
(``documents-<fingerprint>.lock``): a second run waits for the first and then
reuses the finished store. A store is never reopened in a truncating mode: a
new one is created under a temporary name and renamed into place, so a run
that has an older file mapped keeps reading intact vectors.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from equal.embedding.base import Embedder
from equal.files import atomic_write_text, disk_full, is_disk_full, locked, set_aside
from equal.progress import NullProgress, Progress, counting

logger = logging.getLogger(__name__)

FORMAT = 2  # sidecar with per-chunk checksums; the first format had none
_VERIFY_ROWS = 65_536  # rows per block when checking a store written without checksums


@runtime_checkable
class EncodedTexts(Protocol):
    """Texts that can give their UTF-8 bytes in blocks, each text after a NUL byte (the passage store's)."""

    def nul_prefixed_utf8(self) -> Iterable[Any]: ...


def fingerprint(model_name: str, texts: Iterable[str]) -> str:
    """A hash of the model name and every text, in order, each after a NUL byte.

    Texts are streamed: a sequence that offers ``nul_prefixed_utf8()``
    (:class:`EncodedTexts`, such as the passage store's) is hashed block by
    block, any other one text by text, to the same digest.
    """
    digest = hashlib.blake2b(model_name.encode(), digest_size=16)
    if isinstance(texts, EncodedTexts):
        for block in texts.nul_prefixed_utf8():
            digest.update(block)
        return digest.hexdigest()
    for text in texts:
        digest.update(b"\x00")
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def store_path(directory: Path, model_name: str, texts: Iterable[str]) -> Path:
    return directory / f"documents-{fingerprint(model_name, texts)}.npy"


def embed_to_store(embedder: Embedder, texts: Sequence[str], path: Path, *, chunk_size: int = 4096,
                   progress: Progress | None = None, description: str = "embedding") -> np.ndarray:
    """Embed ``texts`` into the memory-mapped file ``path`` (resuming a partial one).

    Returns the vectors as a read-only memory map, ``(len(texts), dim)`` float32.
    ``texts`` is read one slice of ``chunk_size`` at a time (a list, or the
    passage store's texts, which then never are all in memory). Each chunk
    goes to the encoder in one call, so sentence-transformers sorts it by
    length and pads each batch to its longest text only.

    Raises:
        DiskFull: the disk holding ``path`` has no room for the store; the
            chunks already recorded are kept and a rerun resumes after them.
    """
    progress = progress or NullProgress()
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(path, "embedding the same corpus"):
            return _fill(embedder, texts, path, chunk_size, progress, description)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(path.parent, f"the embedding store {path.name}") from exc
        raise


@dataclass(slots=True)
class _State:
    """What a store on disk holds: ``done`` rows verified, with their checksums."""

    done: int = 0
    dim: int | None = None
    offset: int = 0
    chunks: list[list[Any]] = field(default_factory=list)


class _Damaged(Exception):
    """Why a store on disk cannot be trusted (internal: the store is set aside and rebuilt)."""




def _fill(embedder: Embedder, texts: Sequence[str], path: Path, chunk_size: int, progress: Progress,
          description: str) -> np.ndarray:
    n = len(texts)
    meta_path = path.with_suffix(".json")
    state = _check(path, meta_path, n)
    dim = state.dim
    with progress.task(description, total=n) as task:
        task.advance(state.done)
        store: np.memmap | None = None
        try:
            for start in range(state.done, n, chunk_size):
                chunk = list(texts[start:start + chunk_size])
                with counting(task, len(chunk)) as done:  # an embedder that reports its batches moves the bar per batch
                    vectors = np.ascontiguousarray(embedder.encode_counting(chunk, done), dtype=np.float32)
                dim = int(vectors.shape[1])
                if store is None:
                    if start == 0:
                        store = _create(path, meta_path, n, dim)
                    else:
                        _reserve(path)  # a store written by an older equal may be sparse
                        store = np.memmap(path, dtype=np.float32, mode="r+", offset=state.offset, shape=(n, dim))
                stop = start + len(vectors)
                store[start:stop] = vectors
                store.flush()  # the vectors reach the disk before the sidecar says they are there
                state.chunks.append([start, stop, _digest(vectors)])
                _write_meta(meta_path, n, dim, stop, state.chunks)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(path.parent, f"the embedding store {path.name}",
                                None if dim is None else _nbytes(n, dim)) from exc
            raise
        finally:
            store = None
    return np.load(path, mmap_mode="r")


def _nbytes(n: int, dim: int) -> int:
    return 128 + n * dim * 4  # the .npy header is 128 bytes for a 2-d float32 array


def _digest(rows: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(rows, dtype=np.float32).data, digest_size=16).hexdigest()


def _write_meta(meta_path: Path, n: int, dim: int, done: int, chunks: list[list[Any]]) -> None:
    atomic_write_text(meta_path, json.dumps({"format": FORMAT, "n": n, "dim": dim, "done": done,
                                             "checksum": "blake2b-128", "chunks": chunks}))


def _reserve(path: Path) -> None:
    """Allocate every block of ``path`` now, so that writing through a mapping cannot hit a full disk."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        logger.debug("cannot reserve the blocks of %s in advance on this filesystem: %s", path, exc)
    finally:
        os.close(fd)


def _create(path: Path, meta_path: Path, n: int, dim: int) -> np.memmap:
    """A new store with its blocks reserved, renamed into place (never truncating a mapped file)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        store = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        _reserve(tmp)
        meta_path.unlink(missing_ok=True)  # a stale sidecar must not describe the new file
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return store


def _check(path: Path, meta_path: Path, n: int) -> _State:
    """Where to resume: the verified rows of the store at ``path``, or nothing (damage is set aside)."""
    if not path.exists() or not meta_path.exists():
        return _State()  # nothing was recorded (killed before the first chunk): the file is replaced
    try:
        return _verify(path, meta_path, n)
    except _Damaged as exc:
        aside = set_aside(path, meta_path)
        logger.warning("the embedding store %s is damaged (%s); it was moved to %s (delete that file when you no "
                       "longer need it) and the corpus is embedded again", path, exc, aside.name)
        return _State()


def _verify(path: Path, meta_path: Path, n: int) -> _State:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise _Damaged(f"its sidecar {meta_path.name} is not valid JSON") from exc
    if not isinstance(meta, dict):
        raise _Damaged(f"its sidecar {meta_path.name} is not a JSON object")
    n_meta, dim, done = meta.get("n"), meta.get("dim"), meta.get("done")
    if not (isinstance(n_meta, int) and isinstance(dim, int) and isinstance(done, int)) \
            or n_meta != n or dim <= 0 or not 0 <= done <= n:
        raise _Damaged(f"its sidecar {meta_path.name} does not describe {n} vectors")
    offset = _read_header(path, n, dim)
    rows = np.memmap(path, dtype=np.float32, mode="r", offset=offset, shape=(n, dim))
    if "chunks" in meta:
        chunks = _verify_checksums(rows, meta["chunks"], done)
    else:
        chunks = _verify_legacy(rows, done)
        _write_meta(meta_path, n, dim, done, chunks)
        logger.info("the embedding store %s had no checksums; its %d vectors look sound and their checksums are "
                    "now recorded", path, done)
    del rows
    return _State(done, dim, offset, chunks)


def _read_header(path: Path, n: int, dim: int) -> int:
    """The offset of the data in the ``.npy`` file ``path``, after checking it holds ``(n, dim)`` float32."""
    with path.open("rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise _Damaged(f"its header has an unexpected version {version}")
        except ValueError as exc:
            raise _Damaged(f"its header is unreadable: {exc}") from exc
        offset = f.tell()
    if shape != (n, dim) or fortran or dtype != np.dtype(np.float32):
        raise _Damaged(f"its header says {shape} {dtype}, not ({n}, {dim}) float32")
    size = path.stat().st_size
    if size != offset + n * dim * 4:
        raise _Damaged(f"it is {size} bytes long instead of {offset + n * dim * 4}")
    return offset


def _verify_checksums(rows: np.ndarray, chunks: Any, done: int) -> list[list[Any]]:
    if not isinstance(chunks, list):
        raise _Damaged("its sidecar's checksums are unreadable")
    expected = 0
    for item in chunks:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], int)
                and isinstance(item[1], int) and isinstance(item[2], str)):
            raise _Damaged("its sidecar's checksums are unreadable")
        start, stop, digest = item
        if start != expected or not start < stop <= done:
            raise _Damaged(f"its sidecar's checksums do not cover rows 0-{done - 1}")
        if _digest(rows[start:stop]) != digest:
            raise _Damaged(f"rows {start}-{stop - 1} do not match their checksum")
        expected = stop
    if expected != done:
        raise _Damaged(f"its sidecar's checksums do not cover rows 0-{done - 1}")
    return [list(item) for item in chunks]


def _verify_legacy(rows: np.ndarray, done: int) -> list[list[Any]]:
    """Check a store written without checksums as far as possible; return its checksums."""
    chunks: list[list[Any]] = []
    for start in range(0, done, _VERIFY_ROWS):
        block = np.asarray(rows[start:min(done, start + _VERIFY_ROWS)])
        norms = np.linalg.norm(block, axis=1)
        bad = ~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3)
        if bad.any():
            raise _Damaged(f"row {start + int(np.argmax(bad))} is not a unit vector, and the store was written "
                           "without checksums")
        chunks.append([start, start + len(block), _digest(block)])
    return chunks

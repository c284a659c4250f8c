"""Writing the files equal keeps: atomically, and with one clear error when the disk is full.

An atomic write leaves either the old file or the new one, never half, even
when the process is killed or the disk fills up; the temporary file is
removed when the write fails. Every ``ENOSPC`` (or ``EDQUOT``) equal meets
while writing becomes :class:`~equal.errors.DiskFull`, whose message names
the directory and, when known, the space that was needed.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from equal.errors import DiskFull

logger = logging.getLogger(__name__)

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is an ``OSError`` saying that the device or the quota is full.

    Some libraries (pyarrow) raise an ``OSError`` without ``errno``: its message is read then.
    """
    if not isinstance(exc, OSError):
        return False
    if exc.errno is not None:
        return exc.errno in _FULL
    return "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)


def human_size(n_bytes: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    if n_bytes < 1024:
        return f"{n_bytes} bytes"
    size = n_bytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{size:.1f} {unit}"


def disk_full(directory: Path, what: str, needed: int | None = None) -> DiskFull:
    """The :class:`DiskFull` error for writing ``what`` into ``directory``.

    Args:
        directory: where equal was writing.
        what: what it was writing, e.g. ``"the embedding store documents-….npy"``.
        needed: bytes the write needed, when known.
    """
    try:
        free: int | None = shutil.disk_usage(directory).free
    except OSError:
        free = None
    sizes = [f"{human_size(needed)} needed"] if needed is not None else []
    if free is not None:
        sizes.append(f"{human_size(free)} free")
    detail = f" ({', '.join(sizes)})" if sizes else ""
    return DiskFull(
        f"no space left on the device holding {directory} while writing {what}{detail}; free space there "
        "(or point output.dir / extraction.cache_dir at a disk with room) and run the same command again: "
        "what was written before is kept"
    )


@contextmanager
def atomic_file(path: Path, what: str | None = None, needed: int | None = None) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; renamed over ``path`` when the block ends without error.

    For writers that need a path or a file of their own (``pyarrow.parquet.write_table``,
    ``np.save`` to ``tmp.open("wb")``)::

        with atomic_file(out) as tmp:
            pq.write_table(table, tmp)

    On any error the temporary file is removed and ``path`` keeps its old content.

    Raises:
        DiskFull: the disk filled up (``needed`` bytes, when the caller knows them).
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full(path.parent, what or path.name, needed) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling, flush it to disk, then rename it over ``path``.

    Raises:
        DiskFull: the disk filled up; ``path`` still holds its previous content
            and the temporary file is removed.
    """
    with atomic_file(path, needed=len(text.encode("utf-8", "surrogatepass"))) as tmp, \
            tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, written atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def set_aside(path: Path, *companions: Path) -> Path:
    """Rename a damaged file to ``NAME.damaged-<timestamp>`` (never deleting it); returns the new path.

    ``companions`` (a sidecar, SQLite's ``-wal`` and ``-shm``) that exist get
    the same suffix, so the set stays together.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = f".damaged-{stamp}"
    n = 1
    while any(p.with_name(p.name + suffix).exists() for p in (path, *companions)):
        n += 1
        suffix = f".damaged-{stamp}-{n}"
    target = path.with_name(path.name + suffix)
    for companion in companions:
        if companion.exists():
            companion.replace(companion.with_name(companion.name + suffix))
    if path.exists():
        path.replace(target)
    return target


@contextmanager
def locked(path: Path, doing: str) -> Iterator[None]:
    """Hold ``path``'s ``.lock`` file inside the block, saying when another process holds it.

    ``doing`` completes "waiting for another process that is ... into PATH".
    """
    lock = FileLock(path.with_suffix(".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("waiting for another process that is %s into %s", doing, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()

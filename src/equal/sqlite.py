"""The SQLite files equal keeps (the response and embedding caches), opened, checked and closed one way.

:class:`SQLiteFile` opens its file in WAL mode (each commit survives a kill),
checks it (``PRAGMA quick_check``) and creates its table. SQLite's faults become
equal's errors in one place, :meth:`SQLiteFile._fail`: a full disk is a
:class:`~equal.errors.DiskFull` that names the directory; a damaged file is the
subclass's to handle, because what it holds decides what may be done with it (the
response cache's answers were paid for, so it is refused; the embedding cache's
vectors can be computed again, so it is set aside and started afresh).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import ClassVar, NoReturn

from equal.errors import CacheDamaged, DiskFull
from equal.files import disk_full, is_disk_full


class Damaged(Exception):
    """``PRAGMA quick_check`` found the file damaged when it was opened (its findings are the message)."""


def sqlite_fault(exc: sqlite3.Error) -> str | None:
    """``"full"`` when SQLite says the disk is full, ``"damaged"`` when the database is corrupt, else None."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # raised by equal itself, or an old sqlite3 module: only the message is left
        text = str(exc)
        if "disk is full" in text:
            return "full"
        return "damaged" if "malformed" in text or "not a database" in text else None
    primary = code & 0xFF
    if primary == sqlite3.SQLITE_FULL:
        return "full"
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return "damaged"
    return None


def sqlite_problems(db: sqlite3.Connection) -> str | None:
    """What ``PRAGMA quick_check`` finds wrong with ``db`` (the first few lines), or None when it is sound.

    quick_check reads every page once (no index cross-checks): about 0.1 s per
    100 MB on a warm page cache.
    """
    rows = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
    return None if rows == ["ok"] else "; ".join(str(r) for r in rows)


def sqlite_companions(path: Path) -> tuple[Path, Path]:
    """The ``-wal`` and ``-shm`` files SQLite keeps beside ``path`` in WAL mode."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


class SQLiteFile:
    """One SQLite file with one table, shared by threads (``_lock`` guards ``_db``).

    A subclass names its table (``TABLE``, a ``CREATE TABLE IF NOT EXISTS``) and
    what it is in messages (``KIND``; ``FULL_NOTE`` adds what a full disk costs), and
    says what a damaged file is (:meth:`_damaged`) and, when it may be replaced, how
    it is opened afresh (:meth:`_open_damaged`).

    Raises:
        DiskFull: the disk filled up (making the folder, or writing later through :meth:`_fail`).
        CacheDamaged: the file is damaged and the subclass refuses it.
    """

    TABLE: ClassVar[str]
    KIND: ClassVar[str]
    FULL_NOTE: ClassVar[str] = ""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(self.path.parent, f"{self.KIND} {self.path.name}") from exc
            raise
        self._db = self._open()

    def close(self) -> None:
        self._db.close()

    def _connect(self) -> sqlite3.Connection:
        """A connection in WAL mode, checked, with the table in place.

        Raises:
            Damaged: quick_check found the file damaged.
            sqlite3.DatabaseError: SQLite failed (the connection is closed first).
        """
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            problems = sqlite_problems(db)
            if problems is not None:
                raise Damaged(problems)
            db.execute(self.TABLE)
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> sqlite3.Connection:
        """The connection :meth:`__init__` keeps; a file found damaged is the subclass's :meth:`_open_damaged`."""
        try:
            return self._connect()
        except Damaged as exc:
            return self._open_damaged(exc)
        except sqlite3.DatabaseError as exc:
            if sqlite_fault(exc) != "damaged":
                self._fail(exc)
            return self._open_damaged(exc)

    def _reconnect(self) -> sqlite3.Connection:
        """A connection to the file started afresh after a damaged one was set aside: any fault now is final."""
        try:
            return self._connect()
        except Damaged as exc:
            raise self._damaged(str(exc)) from exc
        except sqlite3.DatabaseError as exc:
            self._fail(exc)

    def _open_damaged(self, exc: Exception) -> sqlite3.Connection:
        """A connection in place of a file found damaged when it was opened; by default the file is refused."""
        raise self._damaged(str(exc)) from exc

    def _damaged(self, detail: str) -> CacheDamaged:
        """The error for this file damaged (``detail``: what SQLite or quick_check said), saying what to do."""
        raise NotImplementedError

    def _full(self) -> DiskFull:
        return disk_full(self.path.parent, f"{self.KIND} {self.path.name}{self.FULL_NOTE}")

    def _fail(self, exc: sqlite3.DatabaseError) -> NoReturn:
        """Raise the error ``exc`` is: :class:`DiskFull`, this file's :meth:`_damaged`, or ``exc`` itself."""
        fault = sqlite_fault(exc)
        if fault == "full":
            raise self._full() from exc
        if fault == "damaged":
            raise self._damaged(str(exc)) from exc
        raise exc

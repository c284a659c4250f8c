"""One process per run directory: a second run on the same directory would interleave its writes."""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

from equal.errors import RunLocked
from equal.files import atomic_write_text

LOCK_NAME = ".equal.lock"


class RunDirLock:
    """An OS-level lock on ``RUN_DIR/.equal.lock``, held for the whole run.

    The operating system drops it when the process dies, even by SIGKILL, so
    a crashed run never leaves a stale lock behind.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._lock = FileLock(run_dir / LOCK_NAME, timeout=0)
        self._owner = run_dir / ".equal.pid"

    def __enter__(self) -> RunDirLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            owner = self._owner.read_text().strip() if self._owner.exists() else "unknown"
            raise RunLocked(
                f"another equal process (pid {owner}) is running in {self.run_dir}; wait for it to finish, "
                "stop it, or give this run another output.dir (--out)"
            ) from None
        atomic_write_text(self._owner, str(os.getpid()))
        return self

    def __exit__(self, *exc: object) -> None:
        self._owner.unlink(missing_ok=True)
        self._lock.release()

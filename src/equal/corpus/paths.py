"""Checks of a corpus path before it is read.

Only regular files and folders are read: standard input, a pipe, a device
such as ``/dev/zero`` or a socket could never be read again when a run
resumes, or never ends.
"""

from __future__ import annotations

import stat
from pathlib import Path

from equal.errors import InputError


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


def check_kind(path: Path) -> None:
    """Refuse standard input, pipes, devices and sockets: a run must be able to read its inputs again.

    Raises:
        InputError: ``path`` is ``-``, does not exist, cannot be looked at, or is neither a file nor a folder.
    """
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


def check_readable(path: Path) -> None:
    """Read the first byte of a file, so that one the process may not read is refused before any record is.

    Raises:
        InputError: the file cannot be opened or read.
    """
    if path.is_file():
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc

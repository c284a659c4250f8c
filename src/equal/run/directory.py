"""What makes a folder an equal run directory, and whether the run in it finished.

A run writes only into a directory that is missing, empty, or already a run
directory, so it never replaces a file the user wrote (``config.yaml``,
``dataset.jsonl``, ``stats.json`` are common names). A directory becomes a run
directory when ``equal run`` first writes into it: it gets the marker file
``.equal-run``. A run directory made by an equal that wrote no marker is
recognised by what that equal always wrote: a ``config.yaml`` holding a whole
resolved configuration (every section ``equal run`` saves, and valid) beside
``stats.json`` or ``rounds.jsonl``; it gets the marker on its next run. Any
other such directory can be marked by hand: ``touch DIR/.equal-run``.

``stats.json`` is written last and marks a finished run. It is removed before
a rerun rewrites anything else, so a rerun that is killed or fails leaves a
directory that reads as unfinished, never as a mix of two runs that looks
finished.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from equal.config import RunConfig, upgrade_saved_config
from equal.errors import ConfigError, InputError
from equal.files import atomic_write_text

logger = logging.getLogger(__name__)

MARKER = ".equal-run"
# the files a run writes; their contents are typed in equal.run.schema
CONFIG = "config.yaml"
ROUNDS = "rounds.jsonl"
CLUSTERS = "clusters.json"
DOCUMENTS = "documents.jsonl"
CENTROIDS = "centroids.npy"
PARSE_FAILURES = "parse_failures.jsonl"
DECONTAMINATED = "decontaminated.jsonl"
FINISHED = "stats.json"  # written last
# what a cache directory holds (extraction.cache_dir, RUN_DIR/cache unless set): paid LLM answers, pair vectors,
# the corpus's vectors and passages
CACHE_FILES = ("responses.sqlite", "embeddings.sqlite")
CACHE_PATTERNS = ("documents-*.npy", "passages-*.arrow")
# equal's own lock files: a directory holding only these is as good as empty
_LOCK_FILES = frozenset({".equal.lock", ".equal.pid"})
# the sections every version of equal has saved in config.yaml
_SAVED_SECTIONS = frozenset({"corpus", "reference", "embedding", "clustering", "reward", "bandit", "warmup",
                             "budget", "extraction", "output", "seed"})


def _made_by_older_equal(path: Path) -> bool:
    """A run directory written before the marker existed: a saved config beside a run's round log or stats."""
    if not ((path / FINISHED).is_file() or (path / ROUNDS).is_file()):
        return False
    try:
        saved = yaml.safe_load((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(saved, dict) or not _SAVED_SECTIONS <= set(saved):
        return False
    try:
        RunConfig.model_validate(upgrade_saved_config(saved))
    except ValidationError:
        return False
    return True


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a directory that ``equal run`` wrote (marked, or by an equal before the marker)."""
    return path.is_dir() and ((path / MARKER).is_file() or _made_by_older_equal(path))


def is_cache_dir(path: Path) -> bool:
    """Whether ``path`` is a directory holding one of equal's caches (``responses.sqlite``, a corpus store, ...)."""
    if not path.is_dir():
        return False
    try:
        return any((path / name).exists() for name in CACHE_FILES) or \
            any(next(path.glob(pattern), None) is not None for pattern in CACHE_PATTERNS)
    except OSError:  # a folder that cannot be listed holds nothing equal wrote there
        return False


def claim_run_dir(path: Path) -> None:
    """Make ``path`` a run directory, or check that it already is one.

    A missing directory is created, an empty one is marked, a run directory is
    kept; anything else is refused, so a run never overwrites a user's files.

    Raises:
        ConfigError: ``path`` is a file, a directory holding other files, or
            cannot be created or written; the message names ``output.dir``.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output.dir (--out) {path} is a file, not a directory; give --out a new or empty "
                          "directory for the run")
    if path.is_dir():
        if (path / MARKER).is_file():
            return
        try:
            others = sorted(p.name for p in path.iterdir() if p.name not in _LOCK_FILES)
        except OSError as exc:
            raise ConfigError(f"output.dir (--out) {path} cannot be read ({exc.strerror}); give --out a "
                              "directory you can write to") from None
        if others and not _made_by_older_equal(path):
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            where = str(path) if path.is_absolute() else f"{path} ({path.resolve()})"
            raise ConfigError(
                f"output.dir (--out) {where} is not empty and is not an equal run directory (it holds {shown}); "
                "a run would overwrite files there. Give --out an empty or new directory. If it is a run "
                f"directory of an older equal, mark it as one with `touch {path / MARKER}` and run again"
            )
        if others:
            logger.info("%s is a run directory of an older equal; marking it as one (%s)", path, MARKER)
    try:
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / MARKER, json.dumps({"equal_run_directory": 1}) + "\n")
    except OSError as exc:
        raise ConfigError(f"output.dir (--out) {path} cannot be created or written ({exc.strerror}); give --out "
                          "a directory you can write to") from None


def mark_unfinished(path: Path) -> None:
    """Remove the finished marker (``stats.json``) before a rerun rewrites anything of a finished run.

    The unlink is atomic, and the directory is synced so the removal reaches the
    disk before any rewritten file does.
    """
    (path / FINISHED).unlink(missing_ok=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_finished(path: Path) -> bool:
    """Whether a run finished in ``path`` (its last file, ``stats.json``, is there)."""
    return (path / FINISHED).is_file()


def require_finished(path: Path) -> None:
    """Check that ``path`` holds a finished run, for the commands that read one.

    Raises:
        InputError: ``path`` is missing, a file, an unfinished run (stopped,
            failed or still running) or not a run directory at all.
    """
    if not path.exists():
        raise InputError(f"{path} does not exist; give the directory of a finished `equal run`")
    if not path.is_dir():
        raise InputError(f"{path} is a file; give the directory of a finished `equal run`")
    if is_finished(path):
        return
    if (path / MARKER).is_file() or (path / CONFIG).is_file() or (path / ROUNDS).is_file():
        raise InputError(
            f"{path} holds an unfinished run (no stats.json: the run was stopped, failed, or is still running), "
            "so its files may mix two runs; run the same `equal run` command again to finish it"
        )
    raise InputError(f"{path} has no stats.json; give the directory of a finished `equal run` "
                     "(a run that was stopped resumes when you run its command again)")


def check_extract_output(path: Path) -> None:
    """Check that ``equal extract`` may write ``path`` (and ``path.partial``): new, empty, or its own output.

    Its own output is JSONL whose lines are passages with their ``qa_pairs``;
    a last line cut short by a kill is its own too.

    Raises:
        ConfigError: ``path`` is a directory, or it (or ``path.partial``) holds
            something else, which finishing the extraction would replace.
    """
    if path.is_dir():
        raise ConfigError(f"--out {path} is a directory; give --out the name of the JSONL file to write")
    for candidate in (path, path.with_name(path.name + ".partial")):
        if not candidate.is_file() or _extract_lines(candidate):
            continue
        raise ConfigError(f"--out {path}: {candidate} exists and is not an output of `equal extract` (a line per "
                          "passage with its qa_pairs), and finishing the extraction would replace it; give --out "
                          "a new file name")


def check_export_output(out: Path, fmt: str, run_dir: Path, *, overwrite: bool = False) -> None:
    """Check that ``equal export`` may write ``out`` (a file, or a folder for ``hf``) before it reads anything.

    Export never writes into a run directory (the one exported or any other,
    at any depth) or a cache directory, wherever a link leads, nor over the
    file it keeps itself (``dataset_info.json``). An existing target is
    replaced only with ``overwrite``, and for ``hf`` only if it is a saved
    dataset.

    Raises:
        ConfigError: ``out`` is one of those, a directory where a file is
            written (or a file where a folder is), or exists without ``overwrite``.
    """
    from equal.output.export import check_export_name

    check_export_name(out)
    target = out.resolve()
    shown = str(out) if target == out.absolute() else f"{out} (which leads to {target})"
    source = run_dir.resolve()
    for folder in (target, *target.parents):
        if folder == source or is_run_dir(folder):
            raise ConfigError(f"--out {shown} is inside the run directory {folder}, whose files equal reads and "
                              "rewrites (its data set, stats and paid answers); give --out a path outside every "
                              "run directory")
        if is_cache_dir(folder):
            raise ConfigError(f"--out {shown} is inside the cache directory {folder}, which holds paid LLM answers "
                              "and the corpus's stores; give --out a path outside it")
    if fmt == "hf":
        if target.exists() and not target.is_dir():
            raise ConfigError(f"--out {shown} is a file; --format hf writes a folder: give --out a new folder name")
        if target.is_dir() and any(target.iterdir()):
            if not overwrite:
                raise ConfigError(f"--out {shown} already exists; pass --overwrite to replace the dataset there, or "
                                  "give --out a new folder name")
            if not (target / "state.json").is_file():
                raise ConfigError(f"--out {shown} is a folder that is not a saved dataset (no state.json), and "
                                  "--format hf would mix its files with yours; give --out a new folder name")
        return
    if target.is_dir():
        raise ConfigError(f"--out {shown} is a directory; give --out the name of the file to write")
    if target.exists() or out.is_symlink():
        if not overwrite:
            raise ConfigError(f"--out {shown} already exists; pass --overwrite to replace it, or give --out a new "
                              "file name")
        if target.exists() and not target.is_file():  # a pipe or a device
            raise ConfigError(f"--out {shown} is not a regular file; give --out the name of the file to write")


def _extract_lines(path: Path) -> bool:
    """Whether ``path`` is empty or starts like an output of ``equal extract``."""
    try:
        with path.open("rb") as f:
            head = b""
            while not head.strip():
                line = f.readline()
                if not line:
                    return True  # empty or blank
                head = line
    except OSError as exc:
        raise ConfigError(f"--out {path} cannot be read ({exc.strerror}); give --out a file you can write") from None
    if not head.endswith(b"\n"):  # the only line, cut short by a kill
        return head.startswith(b'{"id": ')
    try:
        row = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(row, dict) and "id" in row and "qa_pairs" in row

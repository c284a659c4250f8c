"""Which files a corpus path stands for: format detection, folder and pattern listing, shards.

A file is read as the format of its suffix. A folder is a saved dataset
(``hf``), or a folder of data files (JSONL, Parquet, CSV: every one of them is
read, each by its suffix, in name order), or else of text files. A glob
pattern (``shards/*.jsonl``) stands for the files it matches. Only names are
listed here (a folder one level at a time); nothing is read, and the files of
a folder or pattern that are left unread are handed back as a :class:`Skip`.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from equal.corpus.skips import Skip
from equal.errors import InputError

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
#: The files a folder or a glob pattern of shards of each format is made of.
_SHARD_SUFFIXES = {"jsonl": (".jsonl", ".json", ".ndjson"), "parquet": (".parquet",), "csv": (".csv",)}
#: The corpus format of a file inside a folder or pattern, by its suffix.
_FILE_FORMATS = {**{s: fmt for fmt, suffixes in _SHARD_SUFFIXES.items() for s in suffixes},
                 **dict.fromkeys(TEXT_SUFFIXES, "text")}
#: A folder or pattern of data files (JSONL, Parquet, CSV, one format or several), each read by its suffix.
SHARDS = "shards"
_EXAMPLES = 3  # names kept per kind of file, to say what a folder holds


def is_pattern(path: str | Path) -> bool:
    """Whether ``path`` is a glob pattern (``shards/*.jsonl``, ``data/**/part-*.parquet``) rather than a path."""
    return any(ch in str(path) for ch in "*?[")


def _file_format(path: Path) -> str | None:
    """The corpus format of a file of a folder or pattern, from its suffix; None for any other file."""
    return _FILE_FORMATS.get(path.suffix.lower())


def is_saved_dataset(folder: Path) -> bool:
    """Whether ``folder`` holds a dataset saved with ``datasets.save_to_disk``."""
    return (folder / "dataset_info.json").exists() or (folder / "dataset_dict.json").exists()


def walk(root: Path) -> Iterator[Path]:
    """Every path under ``root``, depth first, each folder's entries in name order (the order of
    ``sorted(root.rglob("*"))``), listed one folder at a time instead of all at once."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"cannot list the folder {root}: {exc}") from exc
    for entry in entries:
        path = Path(entry.path)
        yield path
        if entry.is_dir() and not entry.is_symlink():
            yield from walk(path)


def _glob(pattern: Path) -> Iterator[Path]:
    """The paths that ``pattern`` matches, in name order (``**`` matches folders at any depth)."""
    return (Path(p) for p in sorted(glob.iglob(str(pattern), recursive=True)))


@dataclass
class FolderContents:
    """What a folder or glob pattern holds: its files counted by format, with the first few names of each.

    A file of no corpus format is counted under its suffix (``.gz``), or as
    ``no suffix``; folders themselves are not counted.
    """

    source: Path
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def scan(cls, source: Path) -> FolderContents:
        """List ``source`` (a folder, walked whole, or a pattern) by names only; nothing is read."""
        contents = cls(source)
        for path in _glob(source) if is_pattern(source) else walk(source):
            if path.is_dir():
                continue
            kind = _file_format(path) or path.suffix.lower() or "no suffix"
            contents.counts[kind] += 1
            names = contents.examples.setdefault(kind, [])
            if len(names) < _EXAMPLES:
                names.append(str(path.relative_to(source)) if source.is_dir() else str(path))
        return contents

    @property
    def shard_formats(self) -> list[str]:
        """The data formats (JSONL, Parquet, CSV) it has files of."""
        return [fmt for fmt in _SHARD_SUFFIXES if self.counts[fmt]]

    def describe(self, kinds: list[str] | None = None) -> str:
        """``3 text files (README.md, CHANGELOG.md, LICENSE.md), 2 .gz files (a.gz, b.gz)``, for ``kinds`` or all."""
        parts = []
        for kind in kinds if kinds is not None else sorted(self.counts, key=lambda k: (-self.counts[k], k)):
            n = self.counts[kind]
            names = ", ".join(self.examples[kind]) + (", ..." if n > len(self.examples[kind]) else "")
            files = "file" if n == 1 else "files"
            label = f"{files} with no suffix" if kind == "no suffix" else f"{kind} {files}"
            parts.append(f"{n} {label} ({names})")
        return ", ".join(parts) or "nothing"

    def others(self, read: set[str]) -> list[str]:
        """The kinds of file that are not read when the formats ``read`` are."""
        return sorted((kind for kind in self.counts if kind not in read), key=lambda k: (-self.counts[k], k))

    def unreadable(self, fmt: str) -> InputError:
        """The error for a folder or pattern that holds no file of ``fmt`` (``auto``: of any corpus format)."""
        if fmt == "auto" and is_pattern(self.source):  # name the format of the pattern's own suffix
            fmt = _FILE_FORMATS.get(self.source.suffix.lower(), fmt)
        what = "file of a corpus format" if fmt == "auto" else f"{fmt} file"
        where = f"is a folder with no {what} in it" if self.source.is_dir() else f"matches no {what}"
        return InputError(
            f"{self.source} {where} ({_suffixes(fmt)}); it holds {self.describe()}. Give data files in one of "
            "those formats, set corpus.format to text (a folder of text files) or hf (a dataset saved with "
            "datasets.save_to_disk), or point corpus.path at the files")

    def unread(self, read: set[str], fmt: str) -> Skip | None:
        """The files not read when the formats ``read`` are (``skipped_files``, each named in the warning)."""
        others = self.others(read)
        if not others:
            return None
        if fmt not in ("auto", SHARDS):
            why = f"corpus.format is {fmt}"
        elif read == {"text"}:
            why = "they are of no corpus format"
        else:
            formats = ", ".join(sorted(read))
            why = (f"the {formats} files are the corpus; text files beside data files are taken for its "
                   "documentation (set corpus.format: text to read the text files instead)"
                   if "text" in others else f"the {formats} files are the corpus")
        return Skip("skipped_files", "%s: %s not read, as %s", (self.source, self.describe(others), why),
                    count=sum(self.counts[kind] for kind in others))


def _suffixes(fmt: str) -> str:
    fmts = [*_SHARD_SUFFIXES, "text"] if fmt in ("auto", SHARDS) else [fmt]
    return ", ".join(s for f in fmts for s in (TEXT_SUFFIXES if f == "text" else _SHARD_SUFFIXES.get(f, ())))


def _formats_read(contents: FolderContents, fmt: str) -> set[str]:
    """The formats of the files read from a folder or pattern: ``fmt``, or for ``auto`` every data format it
    holds, else text.

    Raises:
        InputError: it holds no file of those formats; the message says what it holds.
    """
    if fmt in ("auto", SHARDS):
        chosen = set(contents.shard_formats) or ({"text"} if contents.counts["text"] else set())
    else:
        chosen = {fmt} if contents.counts[fmt] else set()
    if not chosen:
        raise contents.unreadable("auto" if fmt == SHARDS else fmt)
    return chosen


def detect_format(path: Path) -> str:
    """Guess the format of ``path`` from its suffix or what it holds.

    A file takes the format of its suffix. A folder is a saved dataset
    (``hf``); else a folder or glob pattern holding data files (JSONL,
    Parquet or CSV) is :data:`SHARDS`, each of its data files read by its own
    suffix, and one holding only text files (``.txt``, ``.md``, ...) is
    ``text``. Every file is looked at, not the first found.

    Raises:
        InputError: a file of unknown suffix, or a folder or pattern holding
            no file of a corpus format (the message says what it holds).
    """
    if is_pattern(path) or path.is_dir():
        if path.is_dir() and is_saved_dataset(path):
            return "hf"
        return SHARDS if _formats_read(FolderContents.scan(path), "auto") != {"text"} else "text"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {path} from its suffix {path.suffix!r}; "
            f"set corpus.format to one of {', '.join(FORMATS)}"
        )
    return fmt


def shard_files(source: Path, fmt: str, read: set[str]) -> Iterator[tuple[Path, str]]:
    """Each file of a folder or pattern that is read, with its reader's format, in name order.

    ``fmt`` set on a pattern reads every match with it; otherwise a file is
    read when its suffix's format is one of ``read``.
    """
    if is_pattern(source):
        for path in _glob(source):
            own = _file_format(path)
            if fmt not in ("auto", SHARDS) and not path.is_dir():
                yield path, fmt
            elif own in read:
                yield path, own
    else:
        for path in walk(source):
            own = _file_format(path)
            if own in read:
                yield path, own


def text_files(path: Path) -> Iterator[Path | Skip]:
    """The text files to read, one at a time (a folder is walked as it is read, not listed first); a pipe,
    device, socket or broken link named like a text file is a :class:`Skip`."""
    if path.is_file():
        yield path
        return
    for p in walk(path):
        if p.suffix.lower() not in TEXT_SUFFIXES:
            continue
        if p.is_file():
            yield p
        elif not p.is_dir():
            yield Skip("skipped_not_a_file", "%s is not a regular file; skipped", (p,))


def plan(source: Path, fmt: str) -> tuple[FolderContents, set[str]]:
    """What a folder or pattern read as ``fmt`` (not ``hf``) holds, and the formats of the files read from it.

    A pattern with a format set reads every file it matches as that format.

    Raises:
        InputError: it holds no file to read, or it is a pattern of text files
            (or of a saved dataset).
    """
    contents = FolderContents.scan(source)
    if is_pattern(source) and fmt not in ("auto", SHARDS):  # the format set is every match's
        if fmt not in _SHARD_SUFFIXES:
            raise InputError(f"{source} names several files, which is for the formats "
                             f"{', '.join(_SHARD_SUFFIXES)}, not {fmt}; give one file, or a folder for text or hf")
        if not contents.counts:
            raise contents.unreadable(fmt)
        return contents, set(contents.counts)
    read = _formats_read(contents, fmt)
    if read == {"text"} and is_pattern(source):
        raise InputError(f"cannot tell the format of the files {source} names; end the pattern with .jsonl, "
                         ".parquet or .csv, give a folder of text files, or set corpus.format")
    return contents, read


def corpus_files(path: str | Path, fmt: str = "auto") -> Iterator[Path]:
    """The files a corpus is read from, in reading order: the file itself, or those of a folder or pattern.

    Only their names are listed (a folder one level at a time); nothing is read.
    """
    path = Path(path)
    if not is_pattern(path) and not path.is_dir():
        yield path
        return
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "hf":
        yield from (p for p in walk(path) if p.is_file())
        return
    _, read = plan(path, fmt)
    yield from (p for p, _ in shard_files(path, fmt, read) if p.is_file())


def outline(path: str | Path, fmt: str = "auto") -> str:
    """What a corpus folder or pattern was read as and what it holds, for an error message; ``""`` for a file."""
    path = Path(path)
    if not (is_pattern(path) or path.is_dir()) or (path.is_dir() and (fmt == "hf" or is_saved_dataset(path))):
        return ""
    try:
        contents = FolderContents.scan(path)
        read = _formats_read(contents, fmt)
    except InputError as exc:
        return str(exc)
    as_what = "text files, each file one document" if read == {"text"} else f"{', '.join(sorted(read))} files"
    return f"{path} was read as {as_what}; it holds {contents.describe()}"

"""Extract every passage of a corpus: the "All" baseline, and replay data for tuning at zero cost.

Answers go through the same response cache as a run, so a later ``equal run``
with the same ``cache_dir`` pays nothing for passages extracted here. The
output itself is resumable too: lines go to ``OUT.partial`` as each batch
finishes, and a new job keeps the lines already there and extracts only the
passages they lack, so a partial file can be moved to another machine (or
kept in a repository) and finished there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from itertools import islice
from pathlib import Path
from typing import Any

from equal.config import RunConfig
from equal.corpus import read_reference
from equal.errors import ConfigError
from equal.extraction_file import ExtractedPassage, StoredPair
from equal.files import atomic_file
from equal.progress import NullProgress, Progress, counting
from equal.records import Document, QAPair
from equal.run.builders import build_extractor
from equal.run.context import CacheLayout
from equal.run.inputs import read_passages
from equal.stats import Stats


def extract_all(config: RunConfig, out_path: Path, *, progress: Progress | None = None,
                batch_size: int = 16) -> dict[str, Any]:
    """Write one JSON line per passage with its extracted ``qa_pairs`` to ``out_path`` (an :class:`ExtractedPassage`).

    Each line keeps the passage ``id``, ``text``, ``source_id`` and the fields
    named by ``corpus.label_field``; it can be read back as a corpus with
    ``extractor: replay``. The passages are read into the passage store
    (:mod:`equal.corpus.store`, under ``extraction.cache_dir``, else
    ``cache`` beside ``out_path``) and streamed from it, a batch at a time.

    Returns:
        The run's counters (calls, cache hits, tokens, parse failures).
    """
    progress = progress or NullProgress()
    cfg = config
    stats = Stats()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    caches = CacheLayout.beside(out_path.parent, cfg.extraction.cache_dir)
    documents = read_passages(cfg.corpus, keep=tuple(f for f in (cfg.corpus.label_field,) if f),
                              max_passage_chars=cfg.corpus.max_passage_chars, caches=caches, progress=progress,
                              stats=stats)
    partial = out_path.with_name(out_path.name + ".partial")
    # a finished output counts as done too: rerunning it (say on a fresh clone, without the response
    # cache) extracts only passages the corpus gained, instead of paying for every one again
    finished = _line_offsets(out_path) if out_path.exists() else {}
    done = _done_ids(partial) | set(finished)
    n_done = sum(1 for doc_id in documents.column("id") if doc_id in done)
    stats.inc("documents_already_extracted", n_done)
    if n_done == len(documents) and not partial.exists():
        return stats.as_dict()
    extractor = build_extractor(cfg.extraction, caches, stats, cfg.seed, cfg.executor, reference=_examples_from(cfg))
    todo = 0
    try:
        with partial.open("a", encoding="utf-8") as f, \
                progress.task("extracting every passage", len(documents)) as task:
            task.advance(n_done)
            for batch in _batches((d for d in documents if d.id not in done), batch_size):
                todo += len(batch)
                with counting(task, len(batch)) as answered:  # the bar moves per passage, as each answer arrives
                    extractions = extractor.submit(batch, answered).rest()
                for doc, extraction in zip(batch, extractions):
                    if extraction.generation.failed:
                        # no line: the passage stays to do, so the same command again retries it
                        stats.inc("documents_failed")
                        continue
                    row = passage_row(doc, extraction.pairs,
                                      extraction.generation.tokens_in + extraction.generation.tokens_out)
                    f.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
                f.flush()
        _assemble(out_path, documents.column("id"), finished, partial)
        partial.unlink()
    finally:
        extractor.close()
    stats.inc("documents_extracted", todo - int(stats.get("documents_failed")))
    return stats.as_dict()


def _examples_from(config: RunConfig) -> list[QAPair]:
    """The reward reference set, where the task-shaped prompt takes its examples (none for the generic prompt).

    Raises:
        ConfigError: ``extraction.prompt: task`` without ``reference.path``.
    """
    if getattr(config.extraction, "prompt", "generic") != "task":
        return []
    if config.reference.path is None:
        raise ConfigError("extraction.prompt: task shows examples of the reference set: set reference.path "
                          "(--reference), or use extraction.prompt: generic")
    return read_reference(Path(config.reference.path), fmt=config.reference.format, min_examples=1)


def _batches(documents: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while batch := list(islice(documents, size)):
        yield batch


def _assemble(out_path: Path, ids: Iterable[str], finished: dict[str, int], partial: Path) -> None:
    """Write the finished file: the passages in corpus order, whatever order the jobs took.

    Lines are copied from the earlier finished file and the partial one (the
    partial one wins) by their offsets, so no file is held in memory whole.
    """
    fresh = _line_offsets(partial)
    with atomic_file(out_path) as tmp, tmp.open("wb") as out, partial.open("rb") as new, \
            (out_path.open("rb") if finished else nullcontext()) as old:
        for doc_id in ids:
            for source, offsets in ((new, fresh), (old, finished)):
                if source is not None and doc_id in offsets:
                    source.seek(offsets[doc_id])
                    out.write(source.readline().rstrip(b"\n") + b"\n")
                    break
        out.flush()
        os.fsync(out.fileno())


def passage_row(doc: Document, pairs: list[QAPair], tokens: int) -> ExtractedPassage:
    """One line of the output: the passage, its metadata, its pairs and the tokens its extraction cost."""
    return ExtractedPassage(doc.id, doc.text, doc.source_id, dict(doc.metadata),
                            [StoredPair(p.question, p.answer) for p in pairs], tokens)


def _line_offsets(path: Path) -> dict[str, int]:
    """Where each passage's line starts in the output file ``path``, by passage id."""
    out: dict[str, int] = {}
    offset = 0
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                out[json.loads(line)["id"]] = offset
            offset += len(line)
    return out


def _done_ids(partial: Path) -> set[str]:
    """Ids of the complete lines of a partial output (a line cut by a kill is dropped and redone)."""
    if not partial.exists():
        return set()
    done = set()
    with atomic_file(partial) as tmp, partial.open("r", encoding="utf-8") as lines, \
            tmp.open("w", encoding="utf-8") as good:
        for line in lines:
            try:
                done.add(json.loads(line)["id"])
            except (json.JSONDecodeError, KeyError):
                continue
            good.write(line if line.endswith("\n") else line + "\n")
        good.flush()
        os.fsync(good.fileno())
    return done

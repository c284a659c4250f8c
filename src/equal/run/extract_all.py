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
from pathlib import Path
from typing import Any

from equal.config import RunConfig
from equal.corpus import read_documents
from equal.files import atomic_write_text
from equal.progress import NullProgress, Progress, items_to
from equal.records import Document, QAPair
from equal.run.builders import build_extractor
from equal.stats import Stats


def extract_all(config: RunConfig, out_path: Path, *, progress: Progress | None = None,
                batch_size: int = 16) -> dict[str, Any]:
    """Write one JSON line per passage with its extracted ``qa_pairs`` to ``out_path``.

    Each line keeps the passage ``id``, ``text``, ``source_id`` and the fields
    named by ``corpus.label_field``; it can be read back as a corpus with
    ``extractor: replay``.

    Returns:
        The run's counters (calls, cache hits, tokens, parse failures).
    """
    progress = progress or NullProgress()
    cfg = config
    stats = Stats()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    keep = tuple(f for f in (cfg.corpus.label_field,) if f)
    documents = list(read_documents(
        cfg.corpus.path, text_field=cfg.corpus.text_field, id_field=cfg.corpus.id_field,  # type: ignore[arg-type]
        fmt=cfg.corpus.format, min_chars=cfg.corpus.min_chars,
        max_document_chars=cfg.corpus.max_document_chars, keep_fields=keep, stats=stats,
        max_passage_chars=cfg.corpus.max_passage_chars,
    ))
    if cfg.corpus.limit:
        documents = documents[: cfg.corpus.limit]
    partial = out_path.with_name(out_path.name + ".partial")
    # a finished output counts as done too: rerunning it (say on a fresh clone, without the response
    # cache) extracts only passages the corpus gained, instead of paying for every one again
    finished = _lines_by_id(out_path) if out_path.exists() else {}
    done = _done_ids(partial) | set(finished)
    todo = [d for d in documents if d.id not in done]
    stats.inc("documents_already_extracted", len(documents) - len(todo))
    if not todo and not partial.exists():
        return stats.as_dict()
    extractor = build_extractor(cfg.extraction, out_path.parent, stats, cfg.seed, cfg.executor)
    try:
        with partial.open("a", encoding="utf-8") as f, \
                progress.task("extracting every passage", len(documents)) as task:
            task.advance(len(documents) - len(todo))
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                with items_to(task, len(batch)):  # the bar moves per passage, as each answer arrives
                    extractions = extractor.extract(batch)
                for doc, extraction in zip(batch, extractions):
                    if extraction.generation.failed:
                        # no line: the passage stays to do, so the same command again retries it
                        stats.inc("documents_failed")
                        continue
                    row = passage_row(doc, extraction.pairs,
                                      extraction.generation.tokens_in + extraction.generation.tokens_out)
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
        # the finished file lists the passages in corpus order, whatever order the jobs took
        rows = {**finished, **_lines_by_id(partial)}
        atomic_write_text(out_path, "".join(rows[d.id] + "\n" for d in documents if d.id in rows))
        partial.unlink()
    finally:
        extractor.close()
    stats.inc("documents_extracted", len(todo) - int(stats.get("documents_failed")))
    return stats.as_dict()


def passage_row(doc: Document, pairs: list[QAPair], tokens: int) -> dict[str, Any]:
    """One line of the output: the passage, its metadata, its pairs and the tokens its extraction cost."""
    return {"id": doc.id, "text": doc.text, "source_id": doc.source_id, **doc.metadata,
            "qa_pairs": [{"question": p.question, "answer": p.answer} for p in pairs], "tokens": tokens}


def _lines_by_id(path: Path) -> dict[str, str]:
    return {json.loads(line)["id"]: line for line in path.read_text(encoding="utf-8").splitlines() if line}


def _done_ids(partial: Path) -> set[str]:
    """Ids of the complete lines of a partial output (a line cut by a kill is dropped and redone)."""
    if not partial.exists():
        return set()
    lines = partial.read_text(encoding="utf-8").splitlines(keepends=True)
    done, good = set(), []
    for line in lines:
        try:
            done.add(json.loads(line)["id"])
            good.append(line if line.endswith("\n") else line + "\n")
        except (json.JSONDecodeError, KeyError):
            continue
    atomic_write_text(partial, "".join(good))
    return done

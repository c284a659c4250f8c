"""Extract every passage of a corpus: the "All" baseline, and replay data for tuning at zero cost.

Answers go through the same response cache as a run, so a killed job resumes
where it stopped and a later ``equal run`` with the same ``cache_dir`` pays
nothing for passages extracted here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from equal.config import RunConfig
from equal.corpus import read_documents
from equal.progress import NullProgress, Progress
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
    extractor = build_extractor(cfg.extraction, out_path.parent, stats, cfg.seed, cfg.executor)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f, progress.task("extracting every passage", len(documents)) as task:
            for start in range(0, len(documents), batch_size):
                batch = documents[start:start + batch_size]
                for doc, extraction in zip(batch, extractor.extract(batch)):
                    row = {"id": doc.id, "text": doc.text, "source_id": doc.source_id, **doc.metadata,
                           "qa_pairs": [{"question": p.question, "answer": p.answer} for p in extraction.pairs],
                           "tokens": extraction.generation.tokens_in + extraction.generation.tokens_out}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                task.advance(len(batch))
        tmp.replace(out_path)
    finally:
        extractor.close()
    stats.inc("documents_extracted", len(documents))
    return stats.as_dict()

"""``equal export``: a run's pairs, filtered, in the format a fine-tuning tool reads.

- ``messages``: TRL's ``SFTTrainer`` and Axolotl's ``chat_template`` type read the ``messages`` column;
- ``alpaca`` and ``sharegpt``: LLaMA-Factory (a ``dataset_info.json`` entry is written beside the file);
- ``parquet``: the ``messages`` records as a table;
- ``hf``: a ``datasets`` folder for ``load_from_disk``.

Filters run in this order: minimum pull reward, exact and near duplicates
(MinHash LSH over word 3-grams, datasketch), at most N pairs per document.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from equal.files import atomic_write_text
from equal.filters.decontamination import words
from equal.output.formats import to_record
from equal.records import QAPair

EXPORT_FORMATS = ("messages", "alpaca", "sharegpt", "parquet", "hf")


@dataclass
class ExportFilters:
    """Which pairs to keep.

    Args:
        min_reward: drop pairs whose pull earned less (warm-up pairs carry their pseudo-pull's reward).
        max_pairs_per_document: keep at most this many pairs of one document, in order.
        near_duplicate_threshold: drop a pair whose estimated Jaccard similarity to a kept pair
            (word 3-grams of question and answer) reaches this; ``None`` drops exact duplicates only.
    """

    min_reward: float | None = None
    max_pairs_per_document: int | None = None
    near_duplicate_threshold: float | None = 0.8


def _shingles(pair: QAPair) -> set[str]:
    tokens = words(f"{pair.question} {pair.answer}")
    return {" ".join(tokens[i:i + 3]) for i in range(max(1, len(tokens) - 2))}


def filter_pairs(pairs: list[QAPair], filters: ExportFilters) -> tuple[list[QAPair], dict[str, int]]:
    """The pairs that pass, and how many each filter removed."""
    removed: Counter[str] = Counter()
    kept = []
    for pair in pairs:
        reward = pair.metadata.get("pull_reward")
        if filters.min_reward is not None and (reward is None or reward < filters.min_reward):
            removed["below_min_reward"] += 1
        else:
            kept.append(pair)
    seen: set[tuple[str, ...]] = set()
    unique = []
    for pair in kept:
        key = (" ".join(words(pair.question)), " ".join(words(pair.answer)))
        if key in seen:
            removed["exact_duplicate"] += 1
        else:
            seen.add(key)
            unique.append(pair)
    if filters.near_duplicate_threshold is not None and len(unique) > 1:
        from datasketch import MinHash, MinHashLSH

        lsh = MinHashLSH(threshold=filters.near_duplicate_threshold, num_perm=128)
        survivors = []
        for i, pair in enumerate(unique):
            signature = MinHash(num_perm=128, seed=1)
            signature.update_batch([s.encode() for s in _shingles(pair)])
            if lsh.query(signature):
                removed["near_duplicate"] += 1
                continue
            lsh.insert(str(i), signature)
            survivors.append(pair)
        unique = survivors
    per_document: Counter[str] = Counter()
    cap = filters.max_pairs_per_document
    out = []
    for pair in unique:
        per_document[pair.document_id] += 1
        if cap is not None and per_document[pair.document_id] > cap:
            removed["over_max_per_document"] += 1
        else:
            out.append(pair)
    return out, dict(removed)


def _llama_factory_entry(name: str, file_name: str, fmt: str) -> dict[str, Any]:
    if fmt == "alpaca":
        return {name: {"file_name": file_name, "columns": {"prompt": "instruction", "query": "input",
                                                           "response": "output"}}}
    return {name: {"file_name": file_name, "formatting": "sharegpt", "columns": {"messages": "conversations"}}}


def export_pairs(pairs: list[QAPair], out: Path, fmt: str = "messages", provenance: bool = True) -> Path:
    """Write ``pairs`` to ``out`` (a file, or a folder for ``hf``) and return the path written."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    records = [to_record(p, "messages" if fmt in ("parquet", "hf") else fmt) for p in pairs]
    if not provenance:
        for record in records:
            record.pop("provenance")
    flat = [{**r, "provenance": json.dumps(r["provenance"])} if "provenance" in r else r for r in records]
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        import datasets

        datasets.disable_progress_bars()  # the command's output is one JSON line
        datasets.Dataset.from_list(flat).save_to_disk(str(out))
        return out
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        tmp = out.with_name(out.name + ".tmp")
        pq.write_table(pa.Table.from_pylist(flat), tmp)
        tmp.replace(out)
        return out
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    if fmt in ("alpaca", "sharegpt"):
        atomic_write_text(out.parent / "dataset_info.json",
                          json.dumps(_llama_factory_entry(out.stem, out.name, fmt), indent=2))
    return out

"""``equal export``: a run's pairs, filtered, in the format a fine-tuning tool reads.

- ``messages``: TRL's ``SFTTrainer`` and Axolotl's ``chat_template`` type read the ``messages`` column;
- ``alpaca`` and ``sharegpt``: LLaMA-Factory (an entry is added to the ``dataset_info.json`` beside the file);
- ``parquet``: the ``messages`` records as a table, provenance as a typed struct column;
- ``hf``: a ``datasets`` folder for ``load_from_disk``.

Filters run in this order: minimum pull reward, minimum grade, exact and near duplicates
(MinHash LSH over word 3-grams, datasketch), at most N pairs per document.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from equal.errors import ConfigError, InputError
from equal.files import atomic_file, atomic_write_text
from equal.filters.decontamination import words
from equal.output.formats import arrow_table, to_record
from equal.records import QAPair

EXPORT_FORMATS = ("messages", "alpaca", "sharegpt", "parquet", "hf")
#: LLaMA-Factory's list of datasets, which export keeps beside an alpaca or sharegpt file
DATASET_INFO = "dataset_info.json"


@dataclass
class ExportFilters:
    """Which pairs to keep.

    Args:
        min_reward: drop pairs whose pull earned less (warm-up pairs carry their pseudo-pull's reward)
            and pairs without provenance.
        min_grade: drop pairs graded below this (1-5, the grade in their provenance) and pairs without a grade.
        max_pairs_per_document: keep at most this many pairs of one document, in order.
        near_duplicate_threshold: drop a pair whose estimated Jaccard similarity to a kept pair
            (word 3-grams of question and answer) reaches this; ``None`` drops exact duplicates only.
    """

    min_reward: float | None = None
    min_grade: int | None = None
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
        reward = pair.provenance.pull_reward if pair.provenance is not None else None
        grade = pair.provenance.grade if pair.provenance is not None else None
        if filters.min_reward is not None and (reward is None or reward < filters.min_reward):
            removed["below_min_reward"] += 1
        elif filters.min_grade is not None and grade is None:
            removed["without_grade"] += 1
        elif filters.min_grade is not None and grade is not None and grade.grade < filters.min_grade:
            removed["below_min_grade"] += 1
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


def _llama_factory_entry(file_name: str, fmt: str) -> dict[str, Any]:
    if fmt == "alpaca":
        return {"file_name": file_name, "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    return {"file_name": file_name, "formatting": "sharegpt", "columns": {"messages": "conversations"}}


def _dataset_info(out: Path, fmt: str) -> tuple[Path, dict[str, Any]]:
    """LLaMA-Factory's ``dataset_info.json`` beside ``out``, with this export's entry added.

    The datasets already listed there are kept; an entry of the same name is
    replaced only when it already points at ``out``.

    Raises:
        InputError: the file is not a JSON object, or it lists another dataset
            under this export's name.
    """
    path = out.parent / DATASET_INFO
    info: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {path} ({exc}); fix or move it, then export again") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); "
                             "equal adds its entry to the datasets listed there: fix or move the file, "
                             "then export again") from None
        if not isinstance(loaded, dict):
            raise InputError(f"{path} is not a JSON object of datasets (it holds a {type(loaded).__name__}); "
                             "fix or move it, then export again")
        info = loaded
    name = out.stem
    previous = info.get(name)
    if previous is not None and not (isinstance(previous, dict) and previous.get("file_name") == out.name):
        raise InputError(f"{path} already lists a dataset named {name!r} for another file; give --out another "
                         "file name, or remove that entry")
    info[name] = _llama_factory_entry(out.name, fmt)
    return path, info


def check_export_name(out: Path) -> None:
    """Refuse an ``out`` named like the file export keeps itself (``dataset_info.json``), or a link to one.

    Raises:
        ConfigError: writing ``out`` would replace LLaMA-Factory's list of datasets.
    """
    if DATASET_INFO in (out.name, out.resolve().name):
        raise ConfigError(f"--out {out}: {DATASET_INFO} is the list of datasets that export keeps for LLaMA-Factory "
                          "(it adds an entry there for alpaca and sharegpt); give --out another file name")


def export_pairs(pairs: list[QAPair], out: Path, fmt: str = "messages", provenance: bool = True) -> Path:
    """Write ``pairs`` to ``out`` (a file, or a folder for ``hf``) and return the path written.

    For ``alpaca`` and ``sharegpt`` the export's entry is added to the
    ``dataset_info.json`` beside ``out`` (written atomically), keeping every
    other dataset listed there.

    ``out`` is replaced if it exists; ``equal export`` checks it first
    (:func:`equal.run.directory.check_export_output`).

    Raises:
        ConfigError: ``out`` is named ``dataset_info.json``.
        InputError: that ``dataset_info.json`` cannot be read or updated (checked
            before anything is written).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    check_export_name(out)
    info = _dataset_info(out, fmt) if fmt in ("alpaca", "sharegpt") else None
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        from equal.extras import require

        datasets = require("datasets", "hf", "export --format hf")
        datasets.disable_progress_bars()  # the command's output is one JSON line
        datasets.Dataset(arrow_table(pairs, provenance)).save_to_disk(str(out))
        return out
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with atomic_file(out) as tmp:
            pq.write_table(arrow_table(pairs, provenance), tmp)
        return out
    records = [to_record(p, fmt) for p in pairs]
    if not provenance:
        for record in records:
            record.pop("provenance")
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    if info is not None:
        info_path, entries = info
        atomic_write_text(info_path, json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
    return out

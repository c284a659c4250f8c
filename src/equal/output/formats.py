"""Dataset formats read by fine-tuning tools (TRL, LLaMA-Factory, Axolotl).

- ``messages``: OpenAI chat ``{"messages": [{"role", "content"}...]}`` (TRL's SFTTrainer);
- ``alpaca``: ``{"instruction", "input", "output"}``;
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt", "value"}]}``;
- ``parquet``: the ``messages`` records as a Parquet table.

Every record carries its provenance under ``"provenance"``: ``document_id`` and the keys of
:class:`equal.records.Provenance`. In Parquet (and ``datasets`` folders) it is a
struct column with a fixed schema (:func:`arrow_table`), so that a reader can
filter on ``provenance.cluster`` or ``provenance.pull_reward`` without parsing
JSON; the label is kept as text there, since a corpus's labels may mix types.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from equal.errors import InputError
from equal.files import atomic_file, atomic_write_text
from equal.records import Provenance, QAPair

logger = logging.getLogger(__name__)

FORMATS = ("messages", "alpaca", "sharegpt", "parquet")
SUFFIX = {"messages": ".jsonl", "alpaca": ".jsonl", "sharegpt": ".jsonl", "parquet": ".parquet"}


def to_record(pair: QAPair, fmt: str = "messages") -> dict[str, Any]:
    """One output record; ``pair.provenance`` (and any free ``pair.metadata``) becomes its ``provenance``."""
    provenance = {"document_id": pair.document_id, **(pair.provenance.to_json() if pair.provenance else {}),
                  **pair.metadata}
    if fmt in ("messages", "parquet"):
        return {"messages": [{"role": "user", "content": pair.question},
                             {"role": "assistant", "content": pair.answer}],
                "provenance": provenance}
    if fmt == "alpaca":
        return {"instruction": pair.question, "input": "", "output": pair.answer, "provenance": provenance}
    if fmt == "sharegpt":
        return {"conversations": [{"from": "human", "value": pair.question},
                                  {"from": "gpt", "value": pair.answer}],
                "provenance": provenance}
    raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")


def arrow_table(pairs: list[QAPair], provenance: bool = True) -> Any:
    """The ``messages`` records of ``pairs`` as a ``pyarrow.Table``, provenance as a typed struct.

    The schema is explicit: Arrow's inference would fail on a label column
    that mixes numbers and text, and would give an empty struct to a data set
    without pairs. ``label`` (as text) is a field only when the run had a label
    field; free metadata keys, which have no fixed type, go as one JSON text
    field ``metadata`` when any pair has them.
    """
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    fields = [("messages", pa.list_(message))]
    columns: dict[str, list[Any]] = {"messages": [
        [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.answer}] for p in pairs]}
    if provenance:
        labelled = any(p.provenance is not None and p.provenance.labelled for p in pairs)
        graded = any(p.provenance is not None and p.provenance.grade is not None for p in pairs)
        refined = any(p.provenance is not None and p.provenance.original is not None for p in pairs)
        with_metadata = any(p.metadata for p in pairs)
        struct = [("document_id", pa.string()), ("source_id", pa.string()), ("cluster", pa.int64()),
                  ("round", pa.int64()), ("pull_reward", pa.float64()), ("stage", pa.string())]
        struct += [("label", pa.string())] * labelled
        struct += [("grade", pa.int64()), ("grade_flags", pa.list_(pa.string())), ("graded_by", pa.string())] * graded
        struct += [("original", pa.struct([("question", pa.string()), ("answer", pa.string())]))] * refined
        struct += [("metadata", pa.string())] * with_metadata
        fields.append(("provenance", pa.struct(struct)))
        columns["provenance"] = [_provenance_row(p, labelled, with_metadata) for p in pairs]
    schema = pa.schema(fields)
    return pa.Table.from_pydict(columns, schema=schema)


def _provenance_row(pair: QAPair, labelled: bool, with_metadata: bool) -> dict[str, Any]:
    typed = pair.provenance
    row: dict[str, Any] = {"document_id": pair.document_id, **(typed.to_json() if typed else {})}
    if labelled:
        row["label"] = None if typed is None or typed.label is None else str(typed.label)
    if with_metadata:
        row["metadata"] = json.dumps(pair.metadata, ensure_ascii=False) if pair.metadata else None
    return row


def _from_struct(provenance: dict[str, Any]) -> dict[str, Any]:
    """A provenance struct read back from Arrow as the JSON provenance it was made from."""
    out = {k: v for k, v in provenance.items() if v is not None and k not in ("label", "metadata")}
    if "label" in provenance and provenance.get("stage") is not None:  # a label only beside equal's own keys
        out["label"] = provenance["label"]
    if provenance.get("metadata"):
        out.update(json.loads(provenance["metadata"]))
    return out


def write_dataset(pairs: list[QAPair], out_dir: Path, fmt: str = "messages") -> Path:
    """Write ``dataset.jsonl`` (or ``dataset.parquet``) atomically; returns its path.

    A dataset file of the other suffix, left by an earlier run in another format,
    is removed, so the directory never holds two runs' data sets.
    """
    path = out_dir / f"dataset{SUFFIX[fmt]}"
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with atomic_file(path) as tmp:
            pq.write_table(arrow_table(pairs), tmp)
    else:
        records = (to_record(p, fmt) for p in pairs)
        atomic_write_text(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    for suffix in set(SUFFIX.values()) - {path.suffix}:
        (out_dir / f"dataset{suffix}").unlink(missing_ok=True)
    return path


def from_record(record: dict[str, Any]) -> QAPair:
    """The pair behind an output record of any format (the inverse of :func:`to_record`).

    Raises:
        ValueError: ``record`` is not a record of any format.
    """
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, not {type(record).__name__}")
    provenance = record.get("provenance") or {}
    try:
        if isinstance(provenance, str):  # Parquet written by equal before provenance was a struct
            provenance = json.loads(provenance)
        elif isinstance(provenance, dict) and "messages" in record and "stage" in provenance:
            provenance = _from_struct(provenance)
        if "messages" in record:
            question, answer = record["messages"][0]["content"], record["messages"][1]["content"]
        elif "conversations" in record:
            question, answer = record["conversations"][0]["value"], record["conversations"][1]["value"]
        else:
            question, answer = record["instruction"], record["output"]
    except (KeyError, IndexError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a record of any dataset format ({type(exc).__name__}: {exc})") from None
    if not isinstance(provenance, dict):
        raise ValueError("its provenance is not a JSON object")
    typed, metadata = Provenance.from_json({k: v for k, v in provenance.items() if k != "document_id"})
    return QAPair(question=question, answer=answer, document_id=provenance.get("document_id", ""), metadata=metadata,
                  provenance=typed)


#: the advice of every message about a damaged file of a run directory
DAMAGED = "the file is damaged: restore it, or run the `equal run` command again to rewrite it"

R = TypeVar("R")


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """The JSON value of each non-blank line of a JSONL file, with its line number (from 1).

    A last line cut short (no newline at its end, as a kill in the middle of
    writing or copying the file leaves it) is skipped with a warning.

    Raises:
        InputError: the file cannot be read, or a complete line is not JSON;
            the message names the file and the line.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    lines = data.split(b"\n")
    out = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            out.append((number, json.loads(raw.decode("utf-8"))))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if number == len(lines):  # no newline after it: cut short
                logger.warning("%s: line %d is cut short (a write or copy was interrupted); skipped it",
                               path, number)
                continue
            raise InputError(f"{path}, line {number}: not valid JSON ({exc}); {DAMAGED}") from None
    return out


def read_records(path: Path, parse: Callable[[Any], R], advice: str = "") -> list[R]:
    """``parse`` of each line of the JSONL file ``path`` (none when it is missing).

    Raises:
        InputError: a line is not JSON, or ``parse`` raised ``ValueError`` on it; the
            message names the file and the line, then ``advice``.
    """
    if not path.exists():
        return []
    out = []
    for number, row in read_jsonl(path):
        try:
            out.append(parse(row))
        except ValueError as exc:
            raise InputError(f"{path}, line {number}: {exc}" + (f"; {advice}" if advice else "")) from None
    return out


def read_dataset(run_dir: Path) -> list[QAPair]:
    """The pairs a run wrote, whatever ``output.format`` it used; empty if it wrote none.

    Raises:
        InputError: the dataset file is damaged; the message names it (and the line).
    """
    parquet = run_dir / "dataset.parquet"
    if parquet.exists():
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(parquet).to_pylist()
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{parquet} cannot be read ({exc}); the file is damaged: restore it, or run the "
                             "`equal run` command again to rewrite it") from None
        pairs = []
        for number, row in enumerate(rows, 1):
            try:
                pairs.append(from_record(row))
            except ValueError as exc:
                raise InputError(f"{parquet}, row {number}: {exc}") from None
        return pairs
    return read_records(run_dir / "dataset.jsonl", from_record)

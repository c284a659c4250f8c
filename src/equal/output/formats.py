"""Dataset formats read by fine-tuning tools (TRL, LLaMA-Factory, Axolotl).

- ``messages``: OpenAI chat ``{"messages": [{"role", "content"}...]}`` (TRL's SFTTrainer);
- ``alpaca``: ``{"instruction", "input", "output"}``;
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt", "value"}]}``;
- ``parquet``: the ``messages`` records as a Parquet table.

Every record carries its provenance under ``"provenance"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from equal.records import QAPair

FORMATS = ("messages", "alpaca", "sharegpt", "parquet")
SUFFIX = {"messages": ".jsonl", "alpaca": ".jsonl", "sharegpt": ".jsonl", "parquet": ".parquet"}


def to_record(pair: QAPair, fmt: str = "messages") -> dict[str, Any]:
    """One output record; ``pair.metadata`` becomes its ``provenance``."""
    provenance = {"document_id": pair.document_id, **pair.metadata}
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


def write_dataset(pairs: list[QAPair], out_dir: Path, fmt: str = "messages") -> Path:
    """Write ``dataset.jsonl`` (or ``dataset.parquet``) atomically; returns its path."""
    path = out_dir / f"dataset{SUFFIX[fmt]}"
    tmp = path.with_name(path.name + ".tmp")
    records = [to_record(p, fmt) for p in pairs]
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(
            [{"messages": r["messages"], "provenance": json.dumps(r["provenance"])} for r in records]
        )
        pq.write_table(table, tmp)
    else:
        with tmp.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def from_record(record: dict[str, Any]) -> QAPair:
    """The pair behind an output record of any format (the inverse of :func:`to_record`)."""
    provenance = record.get("provenance") or {}
    if isinstance(provenance, str):
        provenance = json.loads(provenance)
    if "messages" in record:
        question, answer = record["messages"][0]["content"], record["messages"][1]["content"]
    elif "conversations" in record:
        question, answer = record["conversations"][0]["value"], record["conversations"][1]["value"]
    else:
        question, answer = record["instruction"], record["output"]
    metadata = {k: v for k, v in provenance.items() if k != "document_id"}
    return QAPair(question=question, answer=answer, document_id=provenance.get("document_id", ""), metadata=metadata)


def read_dataset(run_dir: Path) -> list[QAPair]:
    """The pairs a run wrote, whatever ``output.format`` it used; empty if it wrote none."""
    if (run_dir / "dataset.parquet").exists():
        import pyarrow.parquet as pq

        return [from_record(r) for r in pq.read_table(run_dir / "dataset.parquet").to_pylist()]
    path = run_dir / "dataset.jsonl"
    if not path.exists():
        return []
    return [from_record(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

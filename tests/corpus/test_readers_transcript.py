"""What the corpus readers make of every format and of corrupt inputs, checked against a committed transcript.

Each case below builds its input, reads it, and notes the documents read
(id, source id, text, metadata), every counter, every warning in order, and
the error if the read is refused; ``fixtures/reader_transcript.json`` holds
what the readers gave when it was written. A change to the readers that
changes any document, counter, warning or error message fails here, named by
case. After a change made on purpose, write the file again with
``EQUAL_WRITE_TRANSCRIPT=1 python -m pytest tests/corpus/test_readers_transcript.py``
and review its diff.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from equal.corpus import read_documents, read_records, read_reference
from equal.errors import EqualError
from equal.stats import Stats
from tests.helpers import FIXTURES

TRANSCRIPT = FIXTURES / "reader_transcript.json"
_LONG = "\n\n".join(f"Paragraph {i} of a long record: " + "python words " * 10 for i in range(4))


def _jsonl(path: Path, *rows: Any) -> Path:
    """A JSONL file of ``rows``: a dict or list is written as JSON, bytes as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows))
    return path


def _bad_records(tmp: Path) -> Path:
    return _jsonl(
        tmp / "bad.jsonl",
        {"id": "a", "text": "A good document about something."},
        b"{not json", b"", b"   ", [1, 2], b"42",
        {"id": "b"}, {"id": "c", "text": 42}, {"id": "c2", "text": None}, {"id": "c3", "text": ["x"]},
        {"id": "d", "text": "   "}, {"id": "d2", "text": ""},
        {"id": "a", "text": "Same id as the first document."},
        b'{"id": "e", "text": "caf\xe9 not utf8"}',
        {"id": "f", "text": "binary\x00\x01\x02 blob"}, {"id": "f2", "text": "\x00\x01\x02\x03" * 20},
        {"id": "n", "text": "\x00\x00\x00\x00 \x00"},  # empty once its NULs are dropped
        {"id": "s\ud800", "text": "lone \ud800 surrogate and a NUL\x00 here", "tag": ["x\udfff"]},
        {"id": None, "text": "An id of null."}, {"id": "", "text": "An empty id."},
        {"id": "\x00", "text": "An id that is only a NUL."}, {"text": "No id field at all."},
        {"id": 7, "text": "A number as its id."}, {"id": "7", "text": "The same id as a string."},
        {"id": "long", "text": _LONG}, {"id": "long#p1", "text": "A record whose id is a passage's."},
        {"id": "x#p0", "text": "A record first, with the id of a passage to come."}, {"id": "x", "text": _LONG},
        {"id": "long", "text": "The id of a record split before."},
        {"id": "g", "text": "Another good document.", "tag": {"k": "v"}},
    )


def _documents(path: Path, **kw: Any) -> Callable[[Stats], list[Any]]:
    def read(stats: Stats) -> list[Any]:
        return [[d.id, d.source_id, d.text, d.metadata] for d in read_documents(path, stats=stats, **kw)]
    return read


def _records(path: Path, **kw: Any) -> Callable[[Stats], list[Any]]:
    def read(stats: Stats) -> list[Any]:
        return list(read_records(path, stats=stats, **kw))
    return read


def _shards(tmp: Path) -> Path:
    folder = tmp / "shards"
    _jsonl(folder / "b.jsonl", *({"id": f"b{i}", "text": f"Shard b document {i}."} for i in range(3)))
    pq.write_table(pa.Table.from_pylist([{"id": f"a{i}", "text": f"Shard a document {i}."} for i in range(3)]),
                   folder / "a.parquet")
    (folder / "c.csv").write_text("id,text\nc0,Shard c document 0.\nc1,\"Shard c, document 1.\"\n")
    (folder / "nested").mkdir()
    _jsonl(folder / "nested" / "d.jsonl", {"id": "d0", "text": "A nested shard's document."})
    for name in ("README.md", "NOTES.txt", "LICENSE", "data.gz"):
        (folder / name).write_text("about the data set")
    return folder


def _text_folder(tmp: Path) -> Path:
    folder = tmp / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("A text file with words.")
    (folder / "sub" / "b.md").write_text("# Title\n\nMarkdown body.")
    (folder / "c.txt").write_bytes(b"\x00\x01binary")
    (folder / "d.txt").write_bytes(b"\xff\xfe\xfa latin junk")
    (folder / "e.rst").write_text("x" * 200)
    (folder / "f.markdown").write_text("   ")
    os.mkfifo(folder / "pipe.txt")
    return folder


def _csv(tmp: Path) -> Path:
    path = tmp / "c.csv"
    path.write_text('id,text,tag\nx,"A document, with a comma.",t\ny,Second one.\nz,' + "w" * 200
                    + ',t\nq,"A quoted field\nover two lines.",t\nlong,"' + "v" * 200 + '",t\nlines,"'
                    + "u" * 60 + "\n" + "u" * 60 + '",t\nlast,The last row.,t,extra\n')
    return path


def _cases(tmp: Path) -> dict[str, Callable[[Stats], Any]]:
    bad = _bad_records(tmp)
    parquet = tmp / "c.parquet"
    pq.write_table(pa.Table.from_pylist([{"doc": f"Document number {i} has some words.", "key": f"k{i}", "n": i}
                                         for i in range(4)] + [{"doc": None, "key": "k4", "n": 4}]), parquet)
    (tmp / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp / "c.xml").write_text("<a/>")
    (tmp / "latin.csv").write_bytes(b"id,text\n1,caf\xe9\n")
    (tmp / "empty").mkdir()
    readme = tmp / "readme-only"
    (readme / "data").mkdir(parents=True)
    (readme / "README.md").write_text("# A data set\n\nIts files are compressed.\n")
    (readme / "data" / "train-0.jsonl.gz").write_bytes(b"\x1f\x8b compressed")
    not_hf = tmp / "not-hf"
    not_hf.mkdir()
    (not_hf / "dataset_info.json").write_text("{}")
    rows = {"content": ["First saved document.", "Second saved document.", ""], "uid": ["u1", "u2", "u3"]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp / "hf"))
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"content": ["A test row."], "uid": ["t"]}),
                          "train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp / "hf-dict"))
    os.mkfifo(tmp / "pipe.jsonl")
    shards, texts, csv = _shards(tmp), _text_folder(tmp), _csv(tmp)
    mixed = tmp / "mixed"
    mixed.mkdir()
    (mixed / "a.txt").write_text("A text file beside a data file.")
    (mixed / "b.json").write_text('{"text": "A data record."}')
    return {
        "mini corpus": _documents(FIXTURES / "mini_corpus.jsonl", id_field="id", keep_fields=("source",),
                                  max_passage_chars=400),
        "mini corpus, content ids, whole": _documents(FIXTURES / "mini_corpus.jsonl", max_passage_chars=None),
        "mini reference": lambda stats: [[p.question, p.answer, p.document_id]
                                         for p in read_reference(FIXTURES / "mini_reference.jsonl", stats=stats)],
        "bad records": _documents(bad, id_field="id", keep_fields=("tag",), max_passage_chars=200),
        "bad records, content ids": _documents(bad, min_chars=20, max_document_chars=40),
        "bad records, raw": _records(bad),
        "bounded jsonl lines": _records(bad, max_record_bytes=40),
        "parquet": _documents(parquet, text_field="doc", id_field="key", keep_fields=("n",)),
        "parquet, raw": _records(parquet),
        "broken parquet": _documents(tmp / "broken.parquet"),
        "csv": _documents(csv, id_field="id", keep_fields=("tag",)),
        "bounded csv lines": _records(csv, max_record_bytes=100),
        "csv not utf-8": _documents(tmp / "latin.csv"),
        "csv header too long": _records(csv, max_record_bytes=5),
        "text folder": _documents(texts),
        "text folder, bounded": _records(texts, max_record_bytes=100),
        "text folder, format given": _documents(texts, fmt="text", id_field="path", keep_fields=("path",)),
        "text folder, a field of data records": _documents(texts, text_field="body"),
        "text folder beside a data file": _documents(mixed),
        "text folder beside a data file, as jsonl": _documents(mixed, fmt="jsonl"),
        "text folder beside a data file, as text": _documents(mixed, fmt="text"),
        "one text file": _documents(texts / "a.txt"),
        "shards": _documents(shards, id_field="id"),
        "shards, jsonl only": _documents(shards, id_field="id", fmt="jsonl"),
        "shards, text only": _documents(shards, fmt="text"),
        "pattern": _documents(shards / "*.jsonl", id_field="id"),
        "pattern, recursive": _documents(shards / "**" / "*.jsonl", id_field="id"),
        "pattern of everything": _documents(shards / "*", id_field="id"),
        "pattern with a format": _documents(shards / "*.csv", id_field="id", fmt="csv"),
        "pattern of text files": _documents(shards / "*.md"),
        "pattern as text": _documents(shards / "*.md", fmt="text"),
        "pattern matching nothing": _documents(tmp / "nothing-*.parquet"),
        "pattern matching nothing, with a format": _documents(tmp / "nothing-*", fmt="csv"),
        "empty folder": _documents(tmp / "empty", fmt="jsonl"),
        "empty folder, auto": _documents(tmp / "empty"),
        "folder with only a readme and archives": _documents(readme),
        "saved dataset": _documents(tmp / "hf", text_field="content", id_field="uid"),
        "saved dataset dict": _documents(tmp / "hf-dict", text_field="content", id_field="uid"),
        "saved dataset, format given": _documents(tmp / "hf", text_field="content", fmt="hf"),
        "a folder that only looks like a saved dataset": _documents(not_hf),
        "no such file": _documents(tmp / "nope.jsonl"),
        "unknown suffix": _documents(tmp / "c.xml"),
        "unknown format": _records(bad, fmt="xml"),
        "standard input": _documents(Path("-"), fmt="jsonl"),
        "a pipe": _documents(tmp / "pipe.jsonl"),
        "no record has the text field": _documents(bad, text_field="body"),
    }


def _plain(value: Any, tmp: str) -> Any:
    """``value`` as JSON holds it, with the case's temporary folder written as ``<tmp>``."""
    return json.loads(json.dumps(value, default=repr).replace(tmp, "<tmp>"))


def _transcript(tmp: Path, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    out = {}
    for name, read in _cases(tmp).items():
        stats, result, error = Stats(), None, None
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            try:
                result = read(stats)
            except EqualError as exc:
                error = f"{type(exc).__name__}: {exc}"
        warnings = [f"{r.levelname}: {r.getMessage()}" for r in caplog.records]
        out[name] = _plain({"read": result, "counters": stats.as_dict(), "warnings": warnings, "error": error},
                           str(tmp))
    return out


def test_the_readers_give_what_the_transcript_holds(tmp_path, caplog):
    got = _transcript(tmp_path, caplog)
    if os.environ.get("EQUAL_WRITE_TRANSCRIPT"):
        TRANSCRIPT.write_text(json.dumps(got, indent=1) + "\n", encoding="utf-8")
    expected = json.loads(TRANSCRIPT.read_text(encoding="utf-8"))
    assert list(got) == list(expected)
    for name in expected:
        assert got[name] == expected[name], name

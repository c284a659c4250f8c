"""Inputs that used to brick a run, exhaust memory or mislabel provenance.

- text UTF-8 cannot encode (a lone surrogate such as ``\\ud800``) or NULs, in a
  corpus line, stored pairs, the reference set or an LLM answer: repaired at
  the boundary and counted, never a crash, also when the answer is replayed
  from the cache;
- a file without newlines, a device such as ``/dev/zero``, a pipe: read in
  bounded memory and skipped, or refused with an error that says what to do;
- a record id that looks like the passage id of another record: ids stay
  unique, so every pair names the document it came from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from equal import run
from equal.corpus import read_documents, read_reference
from equal.errors import InputError
from equal.extraction.task import parse_pairs
from equal.stats import Stats
from equal.testing import FakeOpenAIServer, default_answer, document_text
from tests.helpers import make_corpus

GOOD = 200  # documents in the conftest corpus
SRC = Path(__import__("equal").__file__).resolve().parents[1]


def _append(path: Path, *records: str) -> None:
    with path.open("a") as f:
        for record in records:
            f.write(record + "\n")


def _dataset_text(result) -> str:
    raw = result.dataset_path.read_bytes()
    return raw.decode("utf-8")  # strict: the file must be valid UTF-8


# -- lone surrogates and NULs --------------------------------------------------------------------


def test_lone_surrogate_in_stored_pairs_is_repaired_and_counted(replay_config, corpus_path):
    # JSON escapes are how a lone surrogate arrives from scraped web text
    _append(corpus_path, '{"id": "sur", "text": "python list loop with enough words here", "source": "python", '
                         '"qa_pairs": [{"question": "What is \\ud800 here?", "answer": "A lone \\udc00 half."}]}')
    result = run(replay_config(**{"budget.fraction": 1.0}))
    counters = result.counters
    assert counters["repaired_surrogates"] == 1 and counters["documents_read"] == GOOD + 1
    pair = next(p for p in result.pairs if p.document_id == "sur")
    assert (pair.question, pair.answer) == ("What is \ufffd here?", "A lone \ufffd half.")
    assert "What is \ufffd here?" in _dataset_text(result)


def test_lone_surrogate_and_nul_in_corpus_text_are_repaired_not_skipped(replay_config, corpus_path):
    _append(corpus_path,
            '{"id": "sur", "text": "python list \\ud800 loop words", "source": "python", "qa_pairs": []}',
            '{"id": "nul", "text": "python dict\\u0000 keys and values", "source": "python", "qa_pairs": []}')
    result = run(replay_config(**{"budget.fraction": 1.0}))
    counters = result.counters
    assert counters["documents_read"] == GOOD + 2, counters
    assert counters["repaired_surrogates"] == 1 and counters["repaired_nul"] == 1
    assert "skipped_binary" not in counters
    texts = {d["document_id"]: d["text"] for d in map(json.loads, (result.run_dir / "documents.jsonl").open())}
    assert texts["sur"] == "python list \ufffd loop words" and texts["nul"] == "python dict keys and values"


def test_reader_repairs_text_ids_and_kept_fields(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a\\ud800", "text": "first \\ud83d\\ude00 text", "tag": ["x\\udfff"]}\n'
                    '{"id": "b", "text": "second \\u0000 text"}\n'
                    '{"id": "c", "text": "plain text"}\n')
    stats = Stats()
    docs = list(read_documents(path, id_field="id", keep_fields=("tag",), stats=stats))
    assert [(d.id, d.text, d.metadata) for d in docs] == [
        ("a\ufffd", "first \U0001f600 text", {"tag": ["x\ufffd"]}),  # a well-formed pair stays one character
        ("b", "second  text", {}), ("c", "plain text", {})]
    assert stats.get("repaired_surrogates") == 1 and stats.get("repaired_nul") == 1
    for d in docs:
        (d.id + d.text + json.dumps(d.metadata, ensure_ascii=False)).encode("utf-8")


def test_mostly_nul_text_is_still_binary(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "\x00\x01\x02\x03" * 20}) + "\n" + json.dumps({"text": "ok text"}) + "\n")
    stats = Stats()
    assert [d.text for d in read_documents(path, stats=stats)] == ["ok text"]
    assert stats.get("skipped_binary") == 1 and stats.get("repaired_nul") == 0


def test_reference_with_lone_surrogate_is_repaired(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"question": "q \\ud800", "answer": "a\\u0000"}\n{"question": "q2", "answer": "a2"}\n')
    stats = Stats()
    pairs = read_reference(path, min_examples=2, stats=stats)
    assert [(p.question, p.answer) for p in pairs] == [("q \ufffd", "a"), ("q2", "a2")]
    assert stats.get("repaired_surrogates") == 1 and stats.get("repaired_nul") == 1


@pytest.mark.parametrize("answer", [
    '{"pairs": [{"question": "What is \\ud800?", "answer": "Half\\u0000 a pair."}]}',  # escaped in the JSON
    '{"pairs": [{"question": "What is \ud800?", "answer": "Half\x00 a pair."}]}',  # raw characters
    '{"pairs": [{"question": "What is \\ud800?", "answer": "Half\\u0000 a pair."}, {"question": "cut',  # salvaged
])
def test_parser_returns_encodable_pairs_and_reports_repairs(answer):
    result = parse_pairs(answer)
    assert result.pairs == [("What is \ufffd?", "Half a pair.")]
    assert result.repairs == {"repaired_nul": 1, "repaired_surrogates": 1}
    assert parse_pairs('{"pairs": [{"question": "q", "answer": "a"}]}').repairs == {}


def test_llm_answer_with_lone_surrogate_does_not_brick_the_run(tmp_path, replay_config):
    corpus = make_corpus(tmp_path / "small.jsonl", n_relevant=10, n_other=20)

    def surrogate(messages):
        answer = json.dumps({"pairs": [{"question": "What is @ in python?", "answer": document_text(messages)[:40]}]})
        return answer.replace("@", "\\ud800")  # the escape a model writes, as text: cached, then parsed

    with FakeOpenAIServer(answer=surrogate) as server:
        config = replay_config(**{"corpus.path": str(corpus), "budget.fraction": 1.0, "clustering.k": 3,
                                  "extraction.extractor": "openai", "extraction.model": "m",
                                  "extraction.base_url": server.base_url})
        first = run(config)
        server.answer = default_answer  # the server is fixed; the cached answers still hold the surrogate
        second = run(config)
    for result in (first, second):
        counters = result.counters
        assert counters["pairs_written"] == 30 and counters["repaired_surrogates"] == 30, counters
        assert "What is \ufffd in python?" in _dataset_text(result)
    assert second.counters["llm_cache_hits"] == 30


# -- unbounded reads ---------------------------------------------------------------------------------

# A child process, so that a reader that holds a whole line hits a memory cap instead of the machine.
_CHILD = textwrap.dedent("""
    import json, resource, sys, tracemalloc
    from equal.corpus import read_documents
    from equal.errors import InputError
    from equal.stats import Stats

    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (vm + 768 * 2**20, resource.RLIM_INFINITY))
    out = []
    for path, fmt, id_field in json.loads(sys.argv[1]):
        stats = Stats()
        tracemalloc.start()
        try:
            ids = [d.id for d in read_documents(path, fmt=fmt, id_field=id_field, max_document_chars=1000,
                                                stats=stats)]
            error = None
        except InputError as exc:
            ids, error = [], str(exc)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out.append({"ids": ids, "error": error, "peak": peak, "counters": stats.as_dict()})
    print(json.dumps(out))
""")


def _read_in_child(*reads: tuple[str, str, str | None], timeout: float = 60) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(reads)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


BIG = 128 * 2**20  # a newline-free stretch far longer than any record the reader may hold


def _sparse(path: Path, head: bytes, tail: bytes) -> Path:
    """``head``, BIG NUL bytes without a newline (a sparse file: no disk used), then ``tail``."""
    with path.open("wb") as f:
        f.write(head)
        f.truncate(len(head) + BIG)
        f.seek(0, os.SEEK_END)
        f.write(tail)
    return path


def test_newline_free_files_are_skipped_in_bounded_memory(tmp_path):
    good = [json.dumps({"id": f"g{i}", "text": f"good document {i}"}).encode() + b"\n" for i in (1, 2)]
    jsonl = _sparse(tmp_path / "c.jsonl", good[0], b"\n" + good[1])
    csv = _sparse(tmp_path / "c.csv", b"id,text\ng1,good document 1\n", b"\ng2,good document 2\n")
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("a good text file")
    _sparse(folder / "b.txt", b"", b"")
    results = _read_in_child((str(jsonl), "jsonl", "id"), (str(csv), "csv", "id"), (str(folder), "text", None))
    for result, ids in zip(results, (["g1", "g2"], ["g1", "g2"], ["a.txt"])):
        assert result["ids"] == ids and result["counters"]["skipped_too_long"] == 1, result
        assert result["peak"] < 64 * 2**20, f"held {result['peak'] / 2**20:.0f} MiB to skip a {BIG >> 20} MiB line"


def test_devices_pipes_and_stdin_are_errors_that_say_what_to_do(tmp_path):
    fifo = tmp_path / "corpus.jsonl"
    os.mkfifo(fifo)
    # on the old code /dev/zero fills memory and the pipe waits for a writer forever: the cap and timeout end them
    zero, pipe, stdin = _read_in_child(("/dev/zero", "jsonl", None), (str(fifo), "jsonl", None), ("-", "jsonl", None),
                                       timeout=30)
    assert "character device" in zero["error"] and "save the data to a file" in zero["error"]
    assert "named pipe" in pipe["error"] and "save the data to a file" in pipe["error"]
    assert "standard input" in stdin["error"]


def test_pipe_named_like_a_text_file_in_a_folder_is_a_counted_skip(tmp_path):
    (tmp_path / "a.txt").write_text("a good text file")
    os.mkfifo(tmp_path / "b.txt")
    stats = Stats()
    assert [d.id for d in read_documents(tmp_path, stats=stats)] == ["a.txt"]
    assert stats.get("skipped_not_a_file") == 1


def test_stdin_is_refused_by_read_documents(tmp_path):
    with pytest.raises(InputError, match="standard input"):
        list(read_documents("-", fmt="jsonl"))


# -- ids -----------------------------------------------------------------------------------------------

_LONG = "\n\n".join(f"Paragraph {i} of the long record: " + "python words " * 10 for i in range(4))


@pytest.mark.parametrize("short_first", [False, True])
def test_record_id_cannot_take_a_passage_id(tmp_path, short_first):
    rows = [{"id": "a", "text": _LONG}, {"id": "a#p0", "text": "A short record whose id looks like a passage id."}]
    if short_first:
        rows.reverse()
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + [{"id": "b", "text": "Another record."}]))
    stats = Stats()
    docs = list(read_documents(path, id_field="id", max_passage_chars=200, stats=stats))
    ids = [d.id for d in docs]
    assert len(ids) == len(set(ids)), ids
    assert stats.get("skipped_duplicate_id") == 1
    texts = {r["id"]: r["text"] for r in rows}
    assert all(d.text in texts.get(d.source_id, "Another record.") for d in docs)  # each names its own record
    if short_first:  # the first record keeps the id; the long one cannot have its passage a#p0
        assert ids == ["a#p0", "b"]
    else:
        assert ids == ["a#p0", "a#p1", "a#p2", "a#p3", "b"]


def test_ordinary_passage_ids_are_unchanged(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "doc", "text": _LONG}) + "\n" + json.dumps({"id": "x#1", "text": "t"}) + "\n")
    ids = [d.id for d in read_documents(path, id_field="id", max_passage_chars=200)]
    assert ids == ["doc#p0", "doc#p1", "doc#p2", "doc#p3", "x#1"]


def test_every_pair_names_the_document_it_came_from(tmp_path, replay_config):
    corpus = make_corpus(tmp_path / "small.jsonl", n_relevant=10, n_other=20)
    _append(corpus, json.dumps({"id": "long", "text": _LONG, "source": "python"}),
            json.dumps({"id": "long#p0", "text": "A short python record whose id looks like a passage id.",
                        "source": "other"}))
    rows = [json.loads(line) for line in corpus.open()]
    texts, labels = {r["id"]: r["text"] for r in rows}, {r["id"]: r["source"] for r in rows}
    with FakeOpenAIServer() as server:  # each answer quotes the start of its document
        result = run(replay_config(**{"corpus.path": str(corpus), "budget.fraction": 1.0, "clustering.k": 3,
                                      "corpus.max_passage_chars": 200, "extraction.extractor": "openai",
                                      "extraction.model": "m", "extraction.base_url": server.base_url}))
    records = [json.loads(line) for line in result.dataset_path.open()]
    assert len(records) == result.counters["passages"]  # one pair per passage, each extracted once
    assert sorted(r["provenance"]["document_id"] for r in records if r["provenance"]["source_id"] == "long") == [
        "long#p0", "long#p1", "long#p2", "long#p3"]
    for record in records:
        provenance, answer = record["provenance"], record["messages"][-1]["content"]
        assert answer[:100] in texts[provenance["source_id"]], provenance
        assert provenance["label"] == labels[provenance["source_id"]], provenance
    assert result.counters["skipped_duplicate_id"] == 1  # the short record: its id is a passage's


# -- a corpus folder whose data equal cannot read says what it holds ------------------------------------------------


def test_a_run_on_a_folder_with_only_a_readme_says_what_the_folder_holds(tmp_path, replay_config):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "README.md").write_text("# A data set\n\nIts files are compressed.\n")
    (repo / "data" / "train-0.jsonl.gz").write_bytes(b"\x1f\x8b compressed")
    with pytest.raises(InputError) as refused:
        run(replay_config(**{"corpus.path": str(repo)}))
    message = str(refused.value)
    assert "README.md" in message and "text files" in message and ".gz" in message
    assert "corpus.text_field" not in message  # the field is not what is wrong


def test_a_run_reads_every_shard_of_a_mixed_folder(tmp_path, replay_config, corpus_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in corpus_path.read_text().splitlines()]
    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:100]), folder / "a.parquet")
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[100:]))
    (folder / "README.md").write_text("# About these shards\n")
    result = run(replay_config(**{"corpus.path": str(folder)}))
    assert result.counters["documents_read"] == 200 and result.counters["skipped_files"] == 1

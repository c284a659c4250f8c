"""The passage store: documents round trip through a memory-mapped Arrow file, reused or rebuilt, in bounded memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from equal.config import load_config
from equal.corpus import store as passage_store
from equal.corpus.store import open_or_build, store_path
from equal.embedding.store import fingerprint
from equal.progress import NullProgress
from equal.records import Document
from equal.run.context import CacheLayout
from equal.run.inputs import read_passages
from equal.stats import Stats

DOCS = [
    Document("a", "plain text", "a", {}),
    Document("b#p0", "café ✓ 𝄞 text\n\nwith a paragraph", "b", {"source": "python", "qa_pairs": [
        {"question": "q?", "answer": "a."}]}),
    Document("b#p1", "second passage", "b", {"source": "python", "qa_pairs": [{"question": "q?", "answer": "a."}]}),
    Document("c", "label of another type", "c", {"source": None}),
    Document("d", "nested", "d", {"source": {"x": [1, 2.5, True, None, "s"]}, "n": 7}),
] + [Document(f"e{i}", f"filler passage number {i}", f"e{i}", {"source": i % 3}) for i in range(40)]


def _reader(docs, calls, key="documents_read"):
    def read(counters: Stats):
        calls.append(1)
        for doc in docs:
            counters.inc(key)
            yield doc
    return read


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(passage_store, "BATCH_ROWS", 7)  # many batch boundaries in a few documents


def test_documents_round_trip_with_metadata_across_batches(tmp_path, small_batches):
    store = open_or_build(tmp_path / "passages-x.arrow", _reader(DOCS, []), Stats())
    assert len(store.batches) == 7 and len(store) == len(DOCS)
    assert list(store) == DOCS  # streamed batch by batch
    assert [store[i] for i in range(len(DOCS))] == DOCS  # random access, each side of every boundary
    assert store[-1] == DOCS[-1] and store[5:16] == DOCS[5:16]
    assert store.texts[6:15] == [d.text for d in DOCS[6:15]] and store.texts[13] == DOCS[13].text
    assert list(store.texts) == [d.text for d in DOCS]
    assert store.metadata_fields == {"source", "qa_pairs", "n"}
    assert store.positions(["e30", "a", "b#p1", "missing"]) == {"e30": 35, "a": 0, "b#p1": 2}
    with pytest.raises(IndexError):
        store[len(DOCS)]
    store[0].metadata["source"] = "changed"  # each Document is built on demand: changing one changes nothing
    assert store[0].metadata == {}


def test_texts_hash_to_the_embedding_store_name_of_a_list(tmp_path, small_batches):
    store = open_or_build(tmp_path / "passages-x.arrow", _reader(DOCS, []), Stats())
    # the same embedding store file as before the passage store: existing caches keep working
    assert fingerprint("hashing-64", store.texts) == fingerprint("hashing-64", [d.text for d in DOCS])


def test_a_finished_store_is_reused_with_its_counters(tmp_path):
    calls: list[int] = []
    path = tmp_path / "passages-x.arrow"
    first, second = Stats(), Stats()
    open_or_build(path, _reader(DOCS, calls), first)
    store = open_or_build(path, _reader(DOCS, calls), second)
    assert len(calls) == 1 and list(store) == DOCS
    assert second.as_dict() == first.as_dict() == {"documents_read": len(DOCS)}


@pytest.mark.parametrize("damage", ["truncated", "no sidecar", "sidecar of another file", "garbage sidecar"])
def test_a_damaged_or_unfinished_store_is_built_again(tmp_path, damage):
    calls: list[int] = []
    path = tmp_path / "passages-x.arrow"
    open_or_build(path, _reader(DOCS, calls), Stats())
    sidecar = path.with_suffix(".json")
    if damage == "truncated":
        with path.open("r+b") as f:
            f.truncate(path.stat().st_size // 2)
    elif damage == "no sidecar":
        sidecar.unlink()
    elif damage == "sidecar of another file":
        meta = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**meta, "rows": meta["rows"] + 1}))
    else:
        sidecar.write_text("{not json")
    store = open_or_build(path, _reader(DOCS, calls), Stats())
    assert len(calls) == 2 and list(store) == DOCS
    # a damaged store is kept aside, never deleted; a killed build's file is only replaced
    assert len(list(tmp_path.glob("passages-x.arrow.damaged-*"))) == (damage != "no sidecar")


def _edit_in_place(path, edit):
    """Change the store's bytes without changing its size, as a stray write or a bad disk block would."""
    data = bytearray(path.read_bytes())
    edit(data)
    with path.open("r+b") as f:
        f.write(data)
    assert len(data) == path.stat().st_size


def _same_size_edit(data):
    at = data.index(b"filler passage number 17")
    data[at:at + 24] = b"FILLER PASSAGE NUMBER 17"


def _zeroed_block(data):
    at = (data.index(b"long passage 10 ") // 4096 + 1) * 4096  # a disk block inside the texts
    assert data.index(b"long passage 29 ") > at + 4096
    data[at:at + 4096] = bytes(4096)


def _invalid_utf8(data):
    at = data.index(b"caf\xc3\xa9")
    data[at + 3] = 0xFF  # a lone continuation byte: not UTF-8


LONG_DOCS = DOCS + [Document(f"l{i}", f"long passage {i} " + "words of text " * 90, f"l{i}") for i in range(30)]


@pytest.mark.parametrize("damage", [_same_size_edit, _zeroed_block, _invalid_utf8])
def test_damage_inside_the_store_is_set_aside_and_the_corpus_read_again(tmp_path, caplog, damage):
    calls: list[int] = []
    path = tmp_path / "passages-x.arrow"
    open_or_build(path, _reader(LONG_DOCS, calls), Stats())
    _edit_in_place(path, damage)
    with caplog.at_level("WARNING"):
        store = open_or_build(path, _reader(LONG_DOCS, calls), Stats())
    assert len(calls) == 2 and list(store) == LONG_DOCS  # the corpus's passages, not the damaged ones
    aside = sorted(p.name for p in tmp_path.glob("passages-x.*.damaged-*"))
    assert len(aside) == 2 and aside[0].startswith("passages-x.arrow.damaged-")  # the file and its sidecar
    assert "damaged" in caplog.text and "checksum" in caplog.text and aside[0] in caplog.text


@pytest.mark.parametrize("counters", [{"documents_read": "many"}, {"documents_read": True}, ["documents_read"],
                                      {"documents_read": None}])
def test_a_sidecar_with_counters_that_are_no_numbers_is_set_aside(tmp_path, counters):
    calls: list[int] = []
    path = tmp_path / "passages-x.arrow"
    first = Stats()
    open_or_build(path, _reader(DOCS, calls), first)
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "counters": counters}))
    again = Stats()
    store = open_or_build(path, _reader(DOCS, calls), again)
    assert len(calls) == 2 and list(store) == DOCS and again.as_dict() == first.as_dict()
    assert len(list(tmp_path.glob("passages-x.arrow.damaged-*"))) == 1


def test_checksums_are_verified_when_the_file_changed_or_when_asked(tmp_path, small_batches, monkeypatch):
    path = tmp_path / "passages-x.arrow"
    open_or_build(path, _reader(DOCS, []), Stats())
    verified: list[int] = []
    digest = passage_store._batch_digest

    def counting(batch):
        verified.append(batch.num_rows)
        return digest(batch)

    monkeypatch.setattr(passage_store, "_batch_digest", counting)
    open_or_build(path, _reader(DOCS, []), Stats())
    assert verified == []  # unchanged since it was written: no byte of it is read again
    open_or_build(path, _reader(DOCS, []), Stats(), verify="content")
    assert sum(verified) == len(DOCS)  # asked: every chunk
    verified.clear()
    os.utime(path)  # touched: its timestamps no longer are those recorded, so it is checked once
    open_or_build(path, _reader(DOCS, []), Stats())
    assert sum(verified) == len(DOCS)
    verified.clear()
    open_or_build(path, _reader(DOCS, []), Stats())
    assert verified == []


def test_a_read_that_fails_leaves_no_store(tmp_path):
    path = tmp_path / "passages-x.arrow"

    def failing(counters: Stats):
        yield DOCS[0]
        raise ValueError("the corpus broke")

    with pytest.raises(ValueError):
        open_or_build(path, failing, Stats())
    assert not path.exists() and not path.with_suffix(".json").exists()
    assert list(open_or_build(path, _reader(DOCS, []), Stats())) == DOCS


def test_a_killed_build_is_not_taken_as_finished(tmp_path):
    path = tmp_path / "passages-x.arrow"
    script = textwrap.dedent(f"""
        import sys, time
        from equal.corpus import store
        from equal.records import Document
        from equal.stats import Stats
        store.BATCH_ROWS = 10
        def read(counters):
            for i in range(10**9):
                if i == 100:
                    print("ready", flush=True)
                    time.sleep(60)
                yield Document(str(i), "text " * 50, str(i))
        store.open_or_build(store.Path({str(path)!r}), read, Stats())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not path.with_suffix(".json").exists()  # the batches written so far are in a file nobody reuses
    calls: list[int] = []
    assert list(open_or_build(path, _reader(DOCS, calls), Stats())) == DOCS and calls == [1]


def _config(tmp_path, corpus, **overrides):
    return load_config(None, {"corpus.path": str(corpus), "corpus.id_field": "id", "corpus.label_field": "source",
                              "reference.path": str(corpus), "output.dir": str(tmp_path / "run"), **overrides})


def _read(config, tmp_path):
    stats = Stats()
    store = read_passages(config.corpus, keep=("source",), max_passage_chars=config.corpus.max_passage_chars,
                          caches=CacheLayout(tmp_path / "cache"), progress=NullProgress(), stats=stats)
    return store, stats


def test_the_run_reuses_passages_until_the_corpus_or_a_setting_changes(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"id": f"d{i}", "text": f"document {i} " * 20, "source": "s"} for i in range(30)] + [{"id": "d0"}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store, stats = _read(_config(tmp_path, corpus), tmp_path)
    again, stats_again = _read(_config(tmp_path, corpus), tmp_path)
    assert again.path == store.path and stats_again.as_dict() == stats.as_dict()
    assert stats.as_dict()["skipped_missing_field"] == 1 and len(again) == 30

    limited, _ = _read(_config(tmp_path, corpus, **{"corpus.limit": 10}), tmp_path)
    assert limited.path != store.path and len(limited) == 10

    time.sleep(0.01)
    corpus.write_text(corpus.read_text().replace("document 3 ", "changed 3 "))
    changed, _ = _read(_config(tmp_path, corpus), tmp_path)
    assert changed.path != store.path and changed[3].text.startswith("changed 3")
    assert sorted(p.name for p in (tmp_path / "cache").glob("passages-*.arrow")) == sorted(
        p.name for p in (store.path, limited.path, changed.path))


def test_store_path_is_under_the_cache_directory(tmp_path):
    assert store_path(tmp_path, "k") == tmp_path / "passages-k.arrow"


_MEMORY = textwrap.dedent("""
    import sys, threading, time
    from pathlib import Path
    from equal.corpus.store import open_or_build
    from equal.records import Document
    from equal.stats import Stats

    def anon_kb():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1])

    peak = [anon_kb()]
    def watch():
        while True:
            peak[0] = max(peak[0], anon_kb())
            time.sleep(0.005)
    threading.Thread(target=watch, daemon=True).start()

    n, path = int(sys.argv[1]), Path(sys.argv[2])
    words = ("river mountain python function list loop empire planet harvest music " * 40)
    def read(counters):
        for i in range(n):
            start = (i * 7919) % 400
            yield Document(f"doc-{i}", f"{i} " + words[start:start + 2000], f"doc-{i}", {"source": i % 5})
    store = open_or_build(path, read, Stats())
    total = sum(len(t) for t in store.texts)  # every text read back, and a few at random
    picked = [store[(i * 104729) % n].id for i in range(1000)]
    assert total > 2000 * n and len(picked) == 1000
    time.sleep(0.05)
    print(peak[0])
""")


def test_peak_memory_does_not_grow_with_the_corpus(tmp_path):
    def peak_kb(n: int) -> int:
        done = subprocess.run([sys.executable, "-c", _MEMORY, str(n), str(tmp_path / f"passages-{n}.arrow")],
                              capture_output=True, text=True, timeout=300, check=True)
        return int(done.stdout.strip())

    small, large = peak_kb(20_000), peak_kb(200_000)
    # the texts alone are 40 MB and 400 MB: a list of them would grow ten-fold
    assert large < 1.3 * small, (small, large)


def test_a_corpus_edited_in_place_is_read_again_when_its_content_is_verified(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"id": f"d{i}", "text": f"document {i} " * 20, "source": "s"} for i in range(30)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = corpus.stat()
    store, _ = _read(_config(tmp_path, corpus), tmp_path)
    corpus.write_text(corpus.read_text().replace("document 3 ", "DOCUMENT 3 "))  # same size
    os.utime(corpus, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same modification time
    trusted, _ = _read(_config(tmp_path, corpus), tmp_path)
    assert trusted.path == store.path and trusted[3].text.startswith("document 3")  # what the default trusts
    verified, _ = _read(_config(tmp_path, corpus, **{"corpus.verify": "content"}), tmp_path)
    assert verified.path != store.path and verified[3].text.startswith("DOCUMENT 3")
    again, _ = _read(_config(tmp_path, corpus, **{"corpus.verify": "content"}), tmp_path)
    assert again.path == verified.path


def test_the_run_reads_the_corpus_again_when_its_store_was_edited(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"id": f"d{i}", "text": f"document {i} " * 20, "source": "s"} for i in range(30)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store, _ = _read(_config(tmp_path, corpus), tmp_path)
    path = store.path
    del store

    def edit(data):
        at = data.index(b"document 7 ")
        data[at:at + 11] = b"ALTERED 7  "

    _edit_in_place(path, edit)
    again, _ = _read(_config(tmp_path, corpus), tmp_path)
    assert [d.text for d in again] == [r["text"].strip() for r in rows]

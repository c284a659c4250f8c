"""The reader's set of ids given out: the same answers in memory and once moved to SQLite."""

import json
import random

import pytest

from equal.corpus import read_documents, seen_ids
from equal.corpus.seen_ids import SeenIds
from equal.errors import StorageError
from equal.stats import Stats


def test_ids_are_found_before_and_after_they_move_to_sqlite():
    ids = [f"doc-{i}" for i in range(25)]
    with SeenIds(in_memory=4) as seen:
        for i, id_ in enumerate(ids):
            assert id_ not in seen
            seen.add(id_)
            assert all(earlier in seen for earlier in ids[:i + 1])
        seen.update(ids[:3])  # adding an id again changes nothing
        assert "doc-25" not in seen and "" not in seen
        assert all(id_ in seen for id_ in ids)


def test_a_temporary_table_that_cannot_be_written_says_where_and_what_to_do(tmp_path, monkeypatch):
    import sqlite3

    read_only = tmp_path / "read-only.sqlite"
    sqlite3.connect(read_only).close()
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **kw: connect(f"file:{read_only}?mode=ro", uri=True,
                                                                      isolation_level=None))
    seen = SeenIds(in_memory=2)
    seen.add("a")
    with pytest.raises(StorageError, match="set TMPDIR to a folder on a disk with room"):
        seen.add("b")


def test_in_memory_must_hold_at_least_one_id():
    with pytest.raises(ValueError, match="at least 1"):
        SeenIds(in_memory=0)


def _tricky_corpus(path, seed: int):
    """Repeated ids and texts, records split into passages, and short records named like an earlier record's
    passage."""
    rng = random.Random(seed)
    long_text = "\n\n".join(f"Paragraph {i}: " + "python words " * 10 for i in range(3))
    rows = []
    for _ in range(300):
        kind = rng.random()
        name = f"r{rng.randrange(120)}"  # 300 records, 120 names: most repeat an earlier id
        if kind < 0.3:
            rows.append({"id": name, "text": long_text + f" {rng.randrange(40)}"})
        elif kind < 0.45:
            rows.append({"id": f"{name}#p{rng.randrange(3)}", "text": f"A short record {rng.randrange(40)}."})
        else:
            rows.append({"id": name, "text": f"Record {rng.randrange(60)} about {rng.choice(['rivers', 'loops'])}."})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("id_field", ["id", None])
def test_a_read_past_the_in_memory_limit_gives_out_the_same_documents(tmp_path, monkeypatch, id_field):
    corpus = _tricky_corpus(tmp_path / "c.jsonl", seed=3)

    def read() -> tuple[list[tuple[str, str, str]], dict[str, int]]:
        stats = Stats()
        docs = read_documents(corpus, id_field=id_field, max_passage_chars=200, stats=stats)
        return [(d.id, d.source_id, d.text) for d in docs], stats.as_dict()

    in_memory = read()
    monkeypatch.setattr(seen_ids, "IN_MEMORY", 1)  # every id moves to SQLite as soon as it is added
    moved = read()
    assert moved == in_memory
    docs, counters = in_memory
    assert len({doc_id for doc_id, _, _ in docs}) == len(docs)
    assert counters["skipped_duplicate_id"] > 50  # the corpus does exercise the checks

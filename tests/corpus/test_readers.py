import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from equal.corpus import read_documents, read_reference
from equal.errors import InputError
from equal.stats import Stats


def _docs(path, **kw):
    stats = Stats()
    return list(read_documents(path, stats=stats, **kw)), stats


def test_jsonl_bad_records_are_counted_not_fatal(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"\n".join([
        json.dumps({"id": "a", "text": "A good document about something."}).encode(),
        b"{not json",
        json.dumps([1, 2]).encode(),
        json.dumps({"id": "b"}).encode(),
        json.dumps({"id": "c", "text": 42}).encode(),
        json.dumps({"id": "d", "text": "   "}).encode(),
        json.dumps({"id": "a", "text": "Same id as the first document."}).encode(),
        b'{"id": "e", "text": "caf\xe9 not utf8"}',
        json.dumps({"id": "f", "text": "binary\x00\x01\x02 blob"}).encode(),
        json.dumps({"id": "g", "text": "Another good document."}).encode(),
    ]))
    docs, stats = _docs(path, id_field="id")
    assert [d.id for d in docs] == ["a", "g"]
    counters = stats.as_dict()
    assert counters["skipped_corrupt_line"] == 1
    assert counters["skipped_not_an_object"] == 1
    assert counters["skipped_missing_field"] == 1
    assert counters["skipped_wrong_type"] == 1
    assert counters["skipped_empty"] == 1
    assert counters["skipped_duplicate_id"] == 1
    assert counters["skipped_undecodable"] == 1
    assert counters["skipped_binary"] == 1
    assert counters["documents_read"] == 2


def test_missing_text_field_everywhere_is_a_clear_error(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"body": "text under another name"}) + "\n")
    with pytest.raises(InputError, match="text_field"):
        _docs(path)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        _docs(tmp_path / "nope.jsonl")


def test_unknown_suffix_asks_for_format(tmp_path):
    path = tmp_path / "c.xml"
    path.write_text("<a/>")
    with pytest.raises(InputError, match="corpus.format"):
        _docs(path)


def test_content_hash_ids_are_stable(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "Hello there, world."}) + "\n")
    first, _ = _docs(path)
    second, _ = _docs(path)
    assert first[0].id == second[0].id and len(first[0].id) == 16


def test_parquet_and_csv(tmp_path):
    rows = [{"doc": f"Document number {i} has some words.", "key": f"k{i}"} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    docs, _ = _docs(tmp_path / "c.parquet", text_field="doc", id_field="key")
    assert [d.id for d in docs] == [f"k{i}" for i in range(5)]
    (tmp_path / "c.csv").write_text("key,doc\nx,\"A document, with a comma.\"\ny,Second one.\n")
    docs, _ = _docs(tmp_path / "c.csv", text_field="doc", id_field="key")
    assert [(d.id, d.text) for d in docs] == [("x", "A document, with a comma."), ("y", "Second one.")]


def test_text_folder_skips_binary_and_non_utf8(tmp_path):
    (tmp_path / "a.txt").write_text("A text file with words.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# Title\n\nMarkdown body.")
    (tmp_path / "c.txt").write_bytes(b"\x00\x01binary")
    (tmp_path / "d.txt").write_bytes(b"\xff\xfe\xfa latin junk")
    docs, stats = _docs(tmp_path)
    assert sorted(d.id for d in docs) == ["a.txt", "sub/b.md"]
    assert stats.get("skipped_binary") == 1 and stats.get("skipped_undecodable") == 1


def test_long_document_becomes_passages(tmp_path):
    text = "\n\n".join("paragraph " * 50 for _ in range(6))
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "long", "text": text}) + "\n")
    docs, stats = _docs(tmp_path / "c.jsonl", id_field="id", max_passage_chars=1200)
    assert len(docs) > 1 and all(d.source_id == "long" for d in docs)
    assert [d.id for d in docs] == [f"long#p{i}" for i in range(len(docs))]
    assert stats.get("passages") == len(docs)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=80), st.dictionaries(st.text(max_size=5), st.one_of(
    st.text(max_size=40), st.integers(), st.none(), st.lists(st.integers(), max_size=3)), max_size=4)
    .map(lambda d: json.dumps(d).encode())), max_size=20))
def test_reader_never_crashes_on_arbitrary_lines(tmp_path, lines):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
    stats = Stats()
    try:
        docs = list(read_documents(path, stats=stats))
    except InputError as exc:  # allowed only for "no record has the text field"
        assert "text_field" in str(exc)
        return
    assert all(d.text.strip() for d in docs)


def test_reference_formats_and_minimum(tmp_path):
    path = tmp_path / "r.jsonl"
    rows = [{"question": "q1", "answer": "a1"}, {"prompt": "q2", "output": "a2"},
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q3"},
                          {"role": "assistant", "content": "a3"}]},
            {"unrelated": "field"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = read_reference(path, min_examples=3)
    assert [(p.question, p.answer) for p in pairs] == [("q1", "a1"), ("q2", "a2"), ("q3", "a3")]
    with pytest.raises(InputError, match="fewer than the 10 needed"):
        read_reference(path, min_examples=10)


def test_saved_hugging_face_dataset(tmp_path):
    import datasets
    rows = {"content": ["First saved document.", "Second saved document.", ""], "uid": ["u1", "u2", "u3"]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    docs, stats = _docs(tmp_path / "ds", text_field="content", id_field="uid")
    assert [d.id for d in docs] == ["u1", "u2"] and stats.get("skipped_empty") == 1


def _shards(folder, fmt, n_shards=3, per_shard=4, prefix="s"):
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for s in range(n_shards):
        rows = [{"id": f"{prefix}{s}-{i}", "text": f"{prefix} shard {s} document {i} text"} for i in range(per_shard)]
        ids += [r["id"] for r in rows]
        path = folder / f"part-{s:03d}.{fmt}"
        if fmt == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            pq.write_table(pa.Table.from_pylist(rows), path)
    return ids


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_folder_or_glob_of_shards_is_read_in_name_order(tmp_path, fmt):
    ids = _shards(tmp_path / "shards", fmt)
    ids += _shards(tmp_path / "shards" / "z", fmt, n_shards=1, prefix="z")  # nested, and last by name
    (tmp_path / "shards" / "README").write_text("not a shard")
    assert [d.id for d in read_documents(tmp_path / "shards", id_field="id")] == ids  # format from the files
    pattern = tmp_path / "shards" / f"part-*.{fmt}"
    assert [d.id for d in read_documents(pattern, id_field="id")] == ids[:12]
    recursive = tmp_path / "shards" / "**" / f"*.{fmt}"
    assert [d.id for d in read_documents(recursive, id_field="id")] == ids


def test_shards_are_opened_one_at_a_time(tmp_path, monkeypatch):
    from equal.corpus import formats

    _shards(tmp_path / "shards", "jsonl")
    opened = []
    read_jsonl = formats.READERS["jsonl"]

    def spying(path, max_bytes):
        opened.append(path.name)
        yield from read_jsonl(path, max_bytes)

    monkeypatch.setitem(formats.READERS, "jsonl", spying)
    docs = read_documents(tmp_path / "shards" / "*.jsonl", id_field="id")
    assert next(docs).id == "s0-0" and opened == ["part-000.jsonl"]
    assert [d.id for d in docs][-1] == "s2-3" and opened == ["part-000.jsonl", "part-001.jsonl", "part-002.jsonl"]


def test_shards_that_match_nothing_are_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is a folder with no jsonl file"):
        list(read_documents(tmp_path / "empty", fmt="jsonl"))
    with pytest.raises(InputError, match="matches no parquet file"):
        list(read_documents(tmp_path / "nothing-*.parquet"))


def test_a_run_config_takes_a_glob_of_shards(tmp_path):
    from equal.config import load_config

    _shards(tmp_path / "shards", "parquet")
    config = load_config(None, {"corpus.path": str(tmp_path / "shards" / "*.parquet"),
                                "reference.path": str(tmp_path / "shards" / "part-000.parquet")})
    assert config.absent_inputs() == []
    assert load_config(None, {"corpus.path": str(tmp_path / "none-*.parquet"),
                              "reference.path": str(tmp_path)}).absent_inputs() != []


def test_a_text_folder_is_walked_in_the_order_of_a_sorted_listing(tmp_path):
    from equal.corpus.shards import walk

    for name in ("a/x.txt", "a/b/c.md", "a-b.txt", "a.txt", "z/y/w.txt", "B.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"the text of {name}")
    assert list(walk(tmp_path)) == sorted(tmp_path.rglob("*"))
    assert [d.id for d in read_documents(tmp_path)] == ["B.txt", "a/b/c.md", "a/x.txt", "a-b.txt", "a.txt",
                                                         "z/y/w.txt"]


# -- a folder or pattern of several formats is read whole, or refused with what it holds ----------------------------


def _rows(prefix, n):
    return [{"id": f"{prefix}-{i}", "text": f"document {i} of the {prefix} file, with some words"} for i in range(n)]


def test_a_folder_of_parquet_and_jsonl_shards_reads_every_file(tmp_path):
    from equal.corpus.readers import corpus_files

    folder = tmp_path / "mixed"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(_rows("a", 20)), folder / "a.parquet")
    for name in ("b", "c"):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(name, 20)))
    docs, stats = _docs(folder, id_field="id")
    assert [d.id for d in docs] == [r["id"] for name in "abc" for r in _rows(name, 20)]  # name order, every file
    assert stats.get("documents_read") == 60
    # the files a run's passage store is keyed on are the files read
    assert [p.name for p in corpus_files(folder)] == ["a.parquet", "b.jsonl", "c.jsonl"]
    pattern = folder / "*"
    assert len(_docs(pattern, id_field="id")[0]) == 60  # a pattern too: each file by its own suffix


def test_a_hub_style_folder_reads_its_data_files_and_names_the_text_files_it_skips(tmp_path, caplog):
    from equal.corpus.readers import corpus_files

    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    for s in range(2):
        (repo / "data" / f"part-{s:05d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(f"p{s}", 5)))
    for name in ("README.md", "CHANGELOG.md", "LICENSE.md"):
        (repo / name).write_text(f"# {name}\n\nAbout the data set, not a document of it.\n")
    with caplog.at_level("WARNING"):
        docs, stats = _docs(repo, id_field="id")
    assert [d.id for d in docs] == [f"p{s}-{i}" for s in range(2) for i in range(5)]
    assert stats.get("skipped_files") == 3
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert all(name in warning for name in ("README.md", "CHANGELOG.md", "LICENSE.md"))
    assert "corpus.format: text" in warning  # how to read them instead
    assert [p.name for p in corpus_files(repo)] == ["part-00000.jsonl", "part-00001.jsonl"]


def test_a_folder_with_a_readme_beside_data_equal_cannot_read_says_what_it_holds(tmp_path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "README.md").write_text("# A data set\n\nIts files are compressed.\n")
    for s in range(2):
        (repo / "data" / f"train-{s}.jsonl.gz").write_bytes(b"\x1f\x8b compressed")
    with pytest.raises(InputError) as only_text:
        _docs(repo, text_field="content")
    message = str(only_text.value)
    assert "README.md" in message and ".gz" in message and "text files" in message
    (repo / "README.md").unlink()
    with pytest.raises(InputError, match=r"is a folder with no file of a corpus format in it.*2 \.gz files"):
        _docs(repo)


def test_a_format_that_is_set_reads_its_files_and_names_the_others(tmp_path, caplog):
    folder = tmp_path / "mixed"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(_rows("a", 3)), folder / "a.parquet")
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows("b", 3)))
    with caplog.at_level("WARNING"):
        docs, stats = _docs(folder, id_field="id", fmt="jsonl")
    assert [d.id for d in docs] == ["b-0", "b-1", "b-2"] and stats.get("skipped_files") == 1
    assert "a.parquet" in caplog.text and "corpus.format is jsonl" in caplog.text


# -- the record checks and the id assigner, one by one -----------------------------------------------------------


def test_every_record_check_is_named_by_the_counter_it_bumps():
    import re

    from equal.corpus.checks import ReadOptions, record_checks
    from equal.corpus.ids import IdAssigner

    with IdAssigner() as ids:
        checks = record_checks(ReadOptions(max_document_chars=10), ids)
    names = [type(c).__name__ for c in checks]
    assert names == ["MissingField", "WrongType", "Empty", "TooLong", "Binary", "Empty", "MissingId", "DuplicateId"]
    for check in checks:
        assert check.counter == "skipped_" + re.sub(r"(?<!^)(?=[A-Z])", "_", type(check).__name__).lower()


@pytest.mark.parametrize(("fields", "counter"), [
    ({"body": "no text field"}, "skipped_missing_field"),
    ({"text": None, "id": None}, "skipped_wrong_type"),  # the first rule that refuses is the one counted
    ({"text": " \n "}, "skipped_empty"),
    ({"text": "x" * 11}, "skipped_too_long"),
    ({"text": "\x01\x02\x03"}, "skipped_binary"),
    ({"text": " " * 9 + "\x00", "id": "a"}, "skipped_empty"),  # empty only once its NUL is dropped
    ({"text": "a text", "id": "\x00"}, "skipped_missing_id"),
    ({"text": "a text", "id": "taken"}, "skipped_duplicate_id"),
    ({"text": "a text", "id": "fine"}, None),
])
def test_the_first_check_that_refuses_a_record_names_its_skip(fields, counter):
    from equal.corpus.checks import Draft, ReadOptions, first_skip, record_checks
    from equal.corpus.ids import IdAssigner

    options = ReadOptions(id_field="id", min_chars=1, max_document_chars=10)
    with IdAssigner() as ids:
        ids.give("taken", ["taken"])
        skip = first_skip(record_checks(options, ids), Draft(fields, options))
    assert (skip.counter if skip else None) == counter


def test_record_and_passage_ids_share_one_namespace():
    from equal.corpus.ids import IdAssigner, content_id, passage_ids, record_id

    assert passage_ids("a", 1) == ["a"] and passage_ids("a", 2) == ["a#p0", "a#p1"]
    assert record_id({"id": 7}, "id", "text") == ("7", set()) and record_id({"id": ""}, "id", "text")[0] == ""
    assert record_id({}, None, "text") == (content_id("text"), set())
    with IdAssigner() as ids:
        ids.give("a", ["a#p0", "a#p1"])  # a split record: its own id is taken too
        ids.give("b", ["b"])
        assert ids.taken("a").counter == ids.taken("a#p1").counter == "skipped_duplicate_id"
        assert ids.taken("b") is not None and ids.taken("c") is None
        assert ids.passage_taken("b#p0", ["b#p0#p0", "b#p0#p1"]) is None
        clash = ids.passage_taken("a#p", ["a#p0", "a#p1"])  # a later record whose passages would be a's
        assert clash is not None and clash.args == ("a#p", "a#p0")
        assert ids.passage_taken("a#p1", ["a#p1"]) is None  # one passage is the record's own id: taken() says

"""The run directory's schema: every record round-trips, and a damaged file or key is named."""

from __future__ import annotations

import json

import pytest

from equal.errors import InputError
from equal.output.export import ExportFilters, filter_pairs
from equal.output.formats import FORMATS, from_record, to_record
from equal.records import Provenance, QAPair
from equal.run.directory import MARKER
from equal.run.schema import (
    ClusterRecord,
    DocumentRecord,
    ParseFailure,
    PullRecord,
    RemovedPair,
    RoundRecord,
    RunStats,
    Summary,
    read_clusters,
    read_documents,
    read_rounds,
    read_stats,
)

SUMMARY = Summary(corpus_passages=200, reference_examples=20, clusters=10, clusters_per_round=2, docs_per_pull=3,
                  warmup_documents=8, reward_offset=0.12, alpha=0.001, documents_extracted=40, tokens_spent=0,
                  wall_seconds=1.5, extracted_by_label={"other": 10, "python": 30})
RECORDS = [
    RoundRecord(0, [PullRecord(3, ["a", "b"], 2, 0.8, 0.07), PullRecord(1, ["c"], 0, None, -1.0)], 11, 40, [3, 1, 0]),
    ClusterRecord(3, 17, 2, 4.0, 0.05, [3, 5]),
    DocumentRecord("a", 3, -1, "warmup", 0.0, "python", "text"),
    ParseFailure("c", "no JSON object", "raw answer"),
    RemovedPair("a", "q", "a", "8-gram overlap"),
    SUMMARY,
    RunStats({"pairs_written": 12, "rounds": 3}, SUMMARY),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_record_round_trips_through_json(record):
    text = json.dumps(record.to_json())
    assert type(record).from_json(json.loads(text)) == record


@pytest.mark.parametrize("record", RECORDS[:5], ids=lambda r: type(r).__name__)
def test_a_missing_or_mistyped_key_is_named(record):
    row = record.to_json()
    key = next(iter(row))
    with pytest.raises(ValueError, match=repr(key)):
        type(record).from_json({k: v for k, v in row.items() if k != key})
    with pytest.raises(ValueError, match=repr(key)):
        type(record).from_json({**row, key: True if isinstance(row[key], str) else "x"})


def test_a_summary_without_labels_writes_no_label_key():
    plain = Summary(**{**{f: getattr(SUMMARY, f) for f in SUMMARY.__slots__}, "extracted_by_label": None})
    assert "extracted_by_label" not in plain.to_json()
    assert plain.label_shares() == {} and SUMMARY.label_shares() == {"other": 0.25, "python": 0.75}


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("fmt", FORMATS)
def test_provenance_is_typed_in_memory_and_the_same_keys_on_disk(fmt, labelled):
    provenance = Provenance("src", 4, 2, 0.123456, "bandit", "python" if labelled else None, labelled)
    pair = QAPair("q?", "a.", "src#p1", provenance=provenance)
    record = to_record(pair, fmt)
    expected = {"document_id": "src#p1", "source_id": "src", "cluster": 4, "round": 2, "pull_reward": 0.123456,
                "stage": "bandit", **({"label": "python"} if labelled else {})}
    assert list(record["provenance"].items()) == list(expected.items())  # keys in the order always written
    assert from_record(json.loads(json.dumps(record))) == pair


def test_a_provenance_equal_did_not_write_stays_free_metadata():
    pair = from_record({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                        "provenance": {"document_id": "d", "cluster": True, "round": 0, "pull_reward": 0.1,
                                       "stage": "bandit", "source_id": "d", "note": "mine"}})
    assert pair.provenance is None and pair.metadata["note"] == "mine" and pair.metadata["cluster"] is True
    assert to_record(pair)["provenance"] == {"document_id": "d", "cluster": True, "round": 0, "pull_reward": 0.1,
                                             "stage": "bandit", "source_id": "d", "note": "mine"}
    # export --min-reward keeps only pairs whose pull reward is known and high enough
    rewarded = QAPair("q2", "a2", "e", provenance=Provenance("e", 0, 0, 0.5, "bandit"))
    kept, removed = filter_pairs([pair, rewarded], ExportFilters(min_reward=0.2, near_duplicate_threshold=None))
    assert kept == [rewarded] and removed == {"below_min_reward": 1}


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / MARKER).write_text("{}")
    (tmp_path / "stats.json").write_text(json.dumps(RunStats({"rounds": 1}, SUMMARY).to_json()))
    (tmp_path / "rounds.jsonl").write_text(json.dumps(RECORDS[0].to_json()) + "\n")
    (tmp_path / "clusters.json").write_text(json.dumps([RECORDS[1].to_json()]))
    (tmp_path / "documents.jsonl").write_text(json.dumps(RECORDS[2].to_json()) + "\n")
    return tmp_path


def test_the_readers_return_records(run_dir):
    assert read_stats(run_dir) == RunStats({"rounds": 1}, SUMMARY)
    assert read_rounds(run_dir) == [RECORDS[0]]
    assert read_clusters(run_dir) == [RECORDS[1]]
    assert read_documents(run_dir) == [RECORDS[2]]


@pytest.mark.parametrize(("name", "damage", "reader", "where"), [
    ("rounds.jsonl", lambda row: {**row, "pulls": [{"cluster": 1}]}, read_rounds, "line 2: no 'documents'"),
    ("documents.jsonl", lambda row: {**row, "stage": "later"}, read_documents, "line 2: 'stage' is not one of"),
    ("clusters.json", None, read_clusters, "cluster entry 2: no 'cluster'"),
    ("stats.json", None, read_stats, "no 'corpus_passages'"),
])
def test_a_damaged_file_is_an_error_naming_it_and_where(run_dir, name, damage, reader, where):
    path = run_dir / name
    if name == "clusters.json":
        path.write_text(json.dumps([RECORDS[1].to_json(), {"size": 1}]))
    elif name == "stats.json":
        path.write_text(json.dumps({"counters": {}, "summary": {}}))
    else:
        row = json.loads(path.read_text())
        path.write_text(json.dumps(row) + "\n" + json.dumps(damage(row)) + "\n")
    with pytest.raises(InputError) as error:
        reader(run_dir)
    assert str(path) in str(error.value) and where in str(error.value) and "damaged" in str(error.value)

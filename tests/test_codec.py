"""The JSON codec read off record fields (equal.codec), and the bench's records that use it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from equal.bench.schema import BenchManifest, BenchResult, CellKey, DistractorsEntry, ExtractedPassage, StoredPair
from equal.codec import JsonRecord, from_json, json_key, to_json


@dataclass(frozen=True)
class Point(JsonRecord):
    x: int
    y: float


@dataclass(frozen=True)
class Shape(JsonRecord):
    name: str
    kind: Literal["open", "closed"]
    points: list[Point]
    by_name: dict[str, Point]
    weight: float | None
    note: str | None = field(default=None, metadata=json_key(omit_none=True))
    label: Any = field(default=None, metadata=json_key(when_missing="unlabelled"))
    tags: list[str] = field(default_factory=list)


SHAPE = Shape("s", "closed", [Point(1, 2.5), Point(-3, 0.0)], {"a": Point(0, 1.0)}, None, None, "x", ["t"])


def test_a_record_writes_its_fields_in_order_and_reads_them_back():
    row = SHAPE.to_json()
    assert list(row) == ["name", "kind", "points", "by_name", "weight", "label", "tags"]  # note: None, left out
    assert row["points"] == [{"x": 1, "y": 2.5}, {"x": -3, "y": 0.0}]
    assert Shape.from_json(json.loads(json.dumps(row))) == SHAPE
    noted = Shape.from_json({**row, "note": "n"})
    assert noted.note == "n" and list(noted.to_json())[5] == "note"


def test_a_number_without_a_point_reads_as_a_float_where_the_field_is_one():
    point = Point.from_json({"x": 1, "y": 2})
    assert point == Point(1, 2.0) and isinstance(point.y, float)


@pytest.mark.parametrize(("change", "message"), [
    ({"name": 3}, "'name' is not a string: 3"),
    ({"kind": "ajar"}, "'kind' is not one of open, closed: 'ajar'"),
    ({"points": {"x": 1}}, "'points' is not a list: {'x': 1}"),
    ({"points": [{"x": 1}]}, "no 'y'"),
    ({"points": [{"x": True, "y": 1.0}]}, "'x' is not an integer: True"),
    ({"points": [{"x": 1, "y": "2"}]}, "'y' is not a number: '2'"),
    ({"by_name": {"a": 5}}, "'by_name' is not an object: {'a': 5}"),
    ({"weight": False}, "'weight' is not a number or null: False"),
    ({"tags": ["t", 1]}, "'tags' is not a list of strings: ['t', 1]"),
])
def test_a_wrong_value_is_an_error_naming_its_key(change, message):
    with pytest.raises(ValueError) as info:
        Shape.from_json({**SHAPE.to_json(), **change})
    assert str(info.value) == message


def test_missing_and_unknown_keys():
    row = SHAPE.to_json()
    with pytest.raises(ValueError, match="no 'weight'"):  # no default: an error
        Shape.from_json({k: v for k, v in row.items() if k != "weight"})
    short = Shape.from_json({k: v for k, v in row.items() if k not in ("label", "tags")} | {"newer": 1})
    assert short.label == "unlabelled" and short.tags == []  # the rule, then the default; `newer` is ignored
    with pytest.raises(ValueError, match="not a JSON object"):
        Shape.from_json([row])


@dataclass(frozen=True)
class Line(JsonRecord):
    id: str
    rest: dict[str, Any] = field(default_factory=dict, metadata=json_key(rest=True))
    last: int = 0


def test_the_rest_of_the_keys_is_written_in_its_place_as_a_dict_literal_would_put_it():
    for rest in ({"a": 1, "b": [2]}, {}, {"id": "other", "last": 5, "z": None}):
        assert json.dumps(to_json(Line("i", rest, 9))) == json.dumps({"id": "i", **rest, "last": 9})
    assert from_json(Line, {"last": 2, "b": 1, "id": "i", "a": 0}) == Line("i", {"b": 1, "a": 0}, 2)


def test_an_extraction_line_is_the_bytes_equal_extract_always_wrote():
    passage = ExtractedPassage("d#p0", "text", "d", {"source": "python_docs"}, [StoredPair("q?", "a.")], 42)
    written = json.dumps(passage.to_json(), ensure_ascii=False)
    assert written == json.dumps({"id": "d#p0", "text": "text", "source_id": "d", "source": "python_docs",
                                  "qa_pairs": [{"question": "q?", "answer": "a."}], "tokens": 42}, ensure_ascii=False)
    gpu_line = {**json.loads(written), "extracted_with": "transformers-gpu"}  # a key after the pairs, read too
    again = ExtractedPassage.from_json(gpu_line)
    assert again.source == "python_docs" and again.extracted_with == "transformers-gpu" and again.tokens == 42
    bare = ExtractedPassage.from_json({"id": "x", "text": "t"})  # a hand-made replay corpus
    assert (bare.source, bare.extracted_with, bare.qa_pairs, bare.tokens, bare.source_id) == (None, None, [], 0, "")


def test_a_bench_result_is_keyed_by_the_one_cell_key():
    row = {"reference_set": "champ", "strategy": "EQUAL", "budget": 0.05, "seed": 1, "ot_heldout": float("nan"),
           "relevant_fraction": 0.5, "relevant_pairs_per_1k_calls": 1500.0, "llm_calls": 10, "tokens": 900,
           "selection_seconds": 0.25, "pairs": 15}
    result = BenchResult.from_json(json.loads(json.dumps(row)))
    assert result.key == CellKey("champ", "EQUAL", 0.05, 1) == CellKey.from_json(row)
    # a row written before the graded and distractor metrics reads them as not measured
    assert math.isnan(result.graded_pairs_per_1k_calls) and math.isnan(result.distractor_fraction)
    assert list(result.to_json()) == [*row, "graded_pairs_per_1k_calls", "distractor_fraction"]
    manifest = BenchManifest.from_json({"corpus": "c.jsonl", "passages": 3, "distractors": {"per_reference_set": 2},
                                        "reference_sets": {"champ": {"reward": "champ/reward.jsonl",
                                                                     "heldout": "champ/heldout.jsonl",
                                                                     "relevant_sources": ["sympy_docs"]}}})
    assert manifest.reference_sets["champ"].relevant_sources == ["sympy_docs"] and manifest.sources == {}
    assert manifest.distractors == DistractorsEntry(per_reference_set=2)
    assert "distractors" not in BenchManifest.from_json({**manifest.to_json(), "distractors": None}).to_json()

import json

from hypothesis import given
from hypothesis import strategies as st

from equal.extraction import parse_pairs


def test_well_formed_answer():
    result = parse_pairs(json.dumps({"pairs": [{"question": "What is 2+2?", "answer": "4"}]}))
    assert result.ok and result.pairs == [("What is 2+2?", "4")]


def test_empty_list_is_a_valid_none():
    result = parse_pairs('{"pairs": []}')
    assert result.ok and result.pairs == []


def test_code_fence_and_bare_list_and_aliases():
    text = '```json\n[{"q": "Why?", "a": "Because."}, {"instruction": "Do x", "output": "Done"}]\n```'
    result = parse_pairs(text)
    assert result.ok and result.pairs == [("Why?", "Because."), ("Do x", "Done")]


def test_truncated_json_salvages_complete_pairs():
    text = '{"pairs": [{"question": "A?", "answer": "a"}, {"question": "B?", "answer": "b"}, {"question": "C'
    result = parse_pairs(text)
    assert not result.ok and result.salvaged
    assert result.pairs == [("A?", "a"), ("B?", "b")]


def test_garbage_is_a_counted_failure_not_a_crash():
    for text in ["", "   ", "none", "I cannot help with that.", "{}", '{"pairs": "no"}', "[[[[", "null",
                 '{"pairs": [{"question": 3, "answer": null}]}', "\x00\xff"]:
        result = parse_pairs(text)
        assert not result.ok, text
        assert result.pairs == []
        assert result.error


@given(st.one_of(st.text(max_size=300), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20).map(json.dumps)))
def test_parser_never_raises(text):
    result = parse_pairs(text)
    assert isinstance(result.pairs, list)
    assert all(isinstance(q, str) and isinstance(a, str) and q and a for q, a in result.pairs)

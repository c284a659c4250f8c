from hypothesis import given
from hypothesis import strategies as st

from equal.corpus.passages import split_passages


def test_short_text_is_one_passage():
    assert split_passages("One paragraph.\n\nAnother one.", 1000) == ["One paragraph.\n\nAnother one."]


def test_splits_on_paragraph_boundaries():
    text = "\n\n".join(f"Paragraph {i} " + "word " * 20 for i in range(10))
    passages = split_passages(text, 300)
    assert len(passages) > 1
    for passage in passages:
        assert len(passage) <= 300
        assert passage.startswith("Paragraph")  # never cut inside a paragraph here


def test_blank_text_has_no_passage():
    assert split_passages("  \n\n \t ", 100) == []


@given(st.text(min_size=0, max_size=3000), st.integers(min_value=20, max_value=500))
def test_passages_fit_and_keep_every_word(text, max_chars):
    passages = split_passages(text, max_chars)
    assert all(0 < len(p) <= max_chars for p in passages)
    assert "".join("".join(p.split()) for p in passages) == "".join(text.split())

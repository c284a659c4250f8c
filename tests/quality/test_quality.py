"""The cheap checks of a pair and the grade they give."""

from __future__ import annotations

import pytest

from equal.quality import PairGrade, ReferenceShape, flags, grade
from equal.records import QAPair

SHAPE = ReferenceShape(median_answer_words=40)
LONG = " ".join(["The sum telescopes, so every middle term cancels and the total is the first minus the last."] * 2)


@pytest.mark.parametrize("question, answer, expected", [
    ("What is the length of the beam described in the passage?", "20 meters", ("points_at_passage", "short_answer")),
    ("According to the text, who founded the city?", LONG, ("points_at_passage",)),
    ("How do I reverse a list in Python?", LONG, ()),
    ("Find the sum of the first 100 positive integers.", LONG, ()),
    ("def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n", LONG, ()),
    ("The derivative of x squared", LONG, ("not_a_question",)),
    ("What does the text above say about limits?", "   ", ("points_at_passage", "empty_answer")),
    ("What is a tuple in Python?", "What is a tuple in Python?", ("copies_question", "short_answer")),
    ("Why is the sky blue?", "Rayleigh scattering.", ("short_answer",)),
])
def test_each_check_flags_what_it_names(question: str, answer: str, expected: tuple[str, ...]) -> None:
    assert flags(QAPair(question, answer), SHAPE) == expected


def test_grades_rank_a_self_contained_pair_above_one_pointing_at_its_passage() -> None:
    good = grade(QAPair("How do I reverse a list in Python?", LONG), SHAPE)
    pointing = grade(QAPair("What does the passage say about reversing a list?", LONG), SHAPE)
    empty = grade(QAPair("What does the passage say?", ""), SHAPE)
    assert good == PairGrade(5, ())
    assert pointing.grade == 3 and empty.grade == 1
    assert grade(QAPair("What does the passage say about reversing a list?", LONG), SHAPE) == pointing  # deterministic


def test_the_reference_shape_is_its_median_answer_length() -> None:
    reference = [QAPair("q?", " ".join(["w"] * n)) for n in (10, 30, 1000)]
    assert ReferenceShape.of(reference).median_answer_words == 30
    assert flags(QAPair("Why?", " ".join(["w"] * 7)), ReferenceShape.of(reference)) == ("short_answer",)
    assert flags(QAPair("Why?", " ".join(["w"] * 8)), ReferenceShape.of(reference)) == ()


def test_llm_grades_are_read_from_json_or_a_bare_digit_and_bounded() -> None:
    from equal.quality.llm import parse_grade

    assert [parse_grade(t) for t in ('{"grade": 4}', '{"grade": 4.0}', "Grade: 2", '{"grade": 9}', '{"grade": true}',
                                    "", "{broken", '{"grade": "5"}')] == [4, 4, 2, None, None, None, None, 5]


def test_a_refined_pair_keeps_its_document_and_an_unusable_answer_keeps_nothing() -> None:
    from equal.quality.llm import parse_refined, refine_request

    original = QAPair("What is the length of the beam in the text?", "20 m", document_id="doc-1",
                      metadata={"k": 1})
    request = refine_request(original, [QAPair("Find x if 2x = 4.", "Divide by 2: x = 2.")])
    assert original.question in request.messages[1]["content"] and "Find x if 2x = 4." in request.messages[1]["content"]
    refined = parse_refined('{"question": "A beam is 20 m long. How long is it in cm?", "answer": "2000 cm."}',
                            original)
    assert refined is not None and refined.document_id == "doc-1" and refined.metadata == {"k": 1}
    assert refined.question.startswith("A beam") and parse_refined("not json", original) is None

"""How good a question-answer pair is as training data: cheap checks, an optional LLM grade, a refine pass."""

from equal.quality.checks import CHECKS, PairGrade, ReferenceShape, flags, grade, with_grades

__all__ = ["CHECKS", "PairGrade", "ReferenceShape", "flags", "grade", "with_grades"]

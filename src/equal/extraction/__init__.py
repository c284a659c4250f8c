"""Asking an LLM for the question-answer pairs in documents, and replaying stored pairs."""

from equal.extraction.extractor import LLMExtractor, ReplayExtractor
from equal.extraction.task import ExtractionTask, ParseResult, parse_pairs

__all__ = ["ExtractionTask", "LLMExtractor", "ParseResult", "ReplayExtractor", "parse_pairs"]

"""LLM backends. They only generate; the extraction task owns prompt and parsing."""

from equal.llm.base import LLM, ChatRequest
from equal.llm.cache import ResponseCache

__all__ = ["LLM", "ChatRequest", "ResponseCache"]

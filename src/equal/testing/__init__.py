"""Fakes shipped with the package for tests: a scripted OpenAI-compatible server."""

from equal.testing.fake_server import FakeOpenAIServer, Fault, default_answer, document_text

__all__ = ["FakeOpenAIServer", "Fault", "default_answer", "document_text"]

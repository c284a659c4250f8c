"""Fakes shipped with the package for tests: a scripted OpenAI-compatible server."""

from equal.testing.fake_server import FakeOpenAIServer, Fault

__all__ = ["FakeOpenAIServer", "Fault"]

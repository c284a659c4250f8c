"""The LLM contract: chat requests in, generations with token usage out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from equal.records import Generation


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion request.

    ``json_schema`` asks for structured output when the backend supports it.
    """

    messages: tuple[dict[str, str], ...]
    max_tokens: int = 768
    temperature: float = 0.0
    json_schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    def key(self, model: str) -> str:
        """A hash of everything that determines the answer: the response-cache key."""
        payload = json.dumps(
            {"model": model, "messages": list(self.messages), "max_tokens": self.max_tokens,
             "temperature": self.temperature, "schema": self.json_schema},
            sort_keys=True, ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


#: Called with (index of the request, its generation) as soon as each answer arrives.
OnResult = Callable[[int, Generation], None]


class LLM(Protocol):
    """A backend that answers chat requests.

    ``name`` identifies model and decoding settings for the response cache.
    ``generate`` returns one :class:`Generation` per request, in order, and
    calls ``on_result`` as each one arrives so callers can persist it at once.
    It raises :class:`~equal.errors.BackendError` when retries are exhausted.
    """

    name: str

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> list[Generation]: ...

    def close(self) -> None: ...

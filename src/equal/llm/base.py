"""The LLM contract: chat requests in, generations with token usage out."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from concurrent.futures import Future
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


#: The most tokens one call may count for its prompt or for its answer. A larger count
#: reported by a server is a malformed answer, not a cost (it would also overflow the
#: response cache's 64-bit integers).
MAX_TOKENS_PER_CALL = 10**9

#: Characters per token assumed when a server reports no usage: ``ceil(chars / 4)`` of the
#: prompt and of the answer, the usual rule of thumb for English text and BPE tokenizers.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` when the server does not say: ``ceil(len(text) / CHARS_PER_TOKEN)``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def valid_token_count(value: object) -> bool:
    """Whether ``value`` is a token count that can be charged: an int in ``[0, MAX_TOKENS_PER_CALL]``."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS_PER_CALL


#: Called with (index of the request, its generation) as soon as each answer arrives.
OnResult = Callable[[int, Generation], None]


class LLM(Protocol):
    """A backend that answers chat requests.

    ``name`` identifies model and decoding settings for the response cache, and
    ``former_names`` the names older versions keyed its answers by (still read;
    empty for most backends). ``submit`` sends a batch and returns a future of
    its generations: at once for a backend that can send without waiting (its
    answers come on the backend's own thread), or once they are generated for
    one that cannot (:class:`GeneratesInPlace`). ``generate`` waits for them.
    Either returns one :class:`Generation` per request, in order, and calls
    ``on_result`` as each one arrives so callers can persist it at once. A
    request whose answer stays unusable (or empty) while the server is up
    yields a generation with ``error`` set (a failure: callers must not cache
    it), carrying the tokens its attempts were charged; the batch fails with
    :class:`~equal.errors.BackendError` when the server itself keeps failing
    after every retry. Every answer carries its token usage; a backend counts
    its own faults and retries, not calls or tokens (the extractor counts those
    once, for every backend).
    """

    name: str
    former_names: tuple[str, ...]

    def submit(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> Future[list[Generation]]: ...

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> list[Generation]: ...

    def close(self) -> None: ...


class GeneratesInPlace:
    """The base of a backend that generates in the caller's thread, one request after another (llama.cpp).

    Its ``submit`` generates the whole batch, then returns a future that is
    already done; a backend failure is raised by ``submit`` itself, as by
    ``generate``, so nothing else is sent after it.
    """

    former_names: tuple[str, ...] = ()

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> list[Generation]:
        raise NotImplementedError

    def submit(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> Future[list[Generation]]:
        done: Future[list[Generation]] = Future()
        done.set_result(self.generate(requests, on_result))
        return done

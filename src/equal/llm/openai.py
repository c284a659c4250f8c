"""Any OpenAI-compatible chat server over HTTP: vLLM, llama.cpp server, Ollama, hosted APIs.

Requests run concurrently on one event loop in a background thread, with
one connection pool and one limit on the requests in flight shared by every
batch (:meth:`OpenAICompatibleLLM.submit` returns at once, so a caller can
send the next batch while the last answers of this one arrive). Each is retried with
exponential backoff and jitter on 429 (honouring ``Retry-After``), 5xx,
timeouts, dropped connections, malformed or oversized bodies and empty
choices. ``timeout_s`` bounds the whole request, from sending it to the
last byte of the answer, so a server that trickles its answer is a timeout
too. Every fault is counted in ``stats``. When the server itself stays
unreachable the run stops with :class:`ServerUnavailable`; a redirect stops
it at once with :class:`BackendError` (``base_url`` is wrong). When only one
answer stays garbled, that request gives up with a failed generation
(``Generation.error`` set, counted as ``llm_failed_requests``): its document
gets no pairs in this run, the answer is not cached, and running the same
command again sends that request again.

Token usage is checked: ``usage`` that is not an object, or a count that is
not an integer between 0 and :data:`MAX_TOKENS_PER_CALL`, makes the answer
malformed (retried, counted). When the server reports no usage, tokens are
estimated as ``ceil(characters / 4)`` of the prompt and of the answer
(counted as ``llm_usage_missing``, with one warning), so ``budget.tokens``
still holds. Every attempt the server answered is charged, the unusable ones
too (:func:`_attempt_cost`): a generation carries the tokens of all its
attempts, so a server whose answers stay malformed cannot spend past the cap.
An answer with no text (``content`` null or blank) is an empty answer, retried
like empty ``choices`` and never cached. The API key is read from an
environment variable and kept only in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import threading
from concurrent.futures import Future
from typing import Any

import httpx

from equal.errors import BackendError, RateLimited, ServerUnavailable
from equal.llm.base import (
    CHARS_PER_TOKEN,
    MAX_TOKENS_PER_CALL,
    ChatRequest,
    OnResult,
    estimate_tokens,
    valid_token_count,
)
from equal.records import Generation
from equal.stats import Stats
from equal.text import sanitize

logger = logging.getLogger(__name__)


# Faults in the answer's content rather than the server's health: after the last retry the
# request gives up alone instead of stopping the run.
CONTENT_FAULTS = ("malformed_responses", "empty_choices", "empty_content", "oversized_responses")


class _Retryable(Exception):
    """An attempt that failed but may succeed again; ``tokens`` (in, out) is what it is charged.

    Only an attempt the server answered is charged (a 2xx body that is not a
    usable answer): a status it refused with, a timeout or a dropped connection
    is not.
    """

    def __init__(self, kind: str, detail: str, retry_after: float | None = None,
                 tokens: tuple[int, int] = (0, 0)) -> None:
        super().__init__(detail)
        self.kind = kind
        self.retry_after = retry_after
        self.tokens = tokens


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class OpenAICompatibleLLM:
    """Chat completions from an OpenAI-compatible server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server knows.
        api_key_env: environment variable holding the API key (optional for local servers).
        concurrency: requests in flight at once.
        max_retries: retries per request before giving up.
        timeout_s: seconds one request may take, from sending it to the last byte of the answer.
        json_mode: ``schema`` (OpenAI ``json_schema``: vLLM, OpenAI), ``object_schema``
            (``json_object`` with a ``schema``: llama-cpp-python's server), ``object``
            (plain ``json_object``: Ollama, most APIs) or ``none``.
        backoff_base_s, backoff_max_s: exponential backoff bounds.
        max_response_bytes: a longer body is cut off and counted as ``oversized_responses``.
        stats: counters of each kind of fault and retry (calls and tokens are the extractor's).
    """

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = "OPENAI_API_KEY",
                 concurrency: int = 8, max_retries: int = 5, timeout_s: float = 120.0,
                 json_mode: str = "schema", backoff_base_s: float = 1.0, backoff_max_s: float = 30.0,
                 max_response_bytes: int = 1_000_000, stats: Stats | None = None, seed: int = 0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.json_mode = json_mode
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_response_bytes = max_response_bytes
        self.stats = stats if stats is not None else Stats()
        # the response cache's identity: the served model and how output is asked for, not where it is
        # served, so a server that moves keeps its answers; older versions also keyed by the URL
        self.name = f"openai:{model}:{json_mode}"
        self.former_names: tuple[str, ...] = (f"openai:{self.base_url}:{model}:{json_mode}",)
        self._rng = random.Random(seed)
        self._warned_usage = False
        # started on the first request: the loop thread, and the client and limit that live on it
        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(request.messages),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.json_schema is not None and self.json_mode == "schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "extraction", "schema": request.json_schema},
            }
        elif request.json_schema is not None and self.json_mode == "object_schema":
            # llama-cpp-python's server (and Anyscale-style APIs) take the schema inside json_object
            body["response_format"] = {"type": "json_object", "schema": request.json_schema}
        elif request.json_schema is not None and self.json_mode == "object":
            body["response_format"] = {"type": "json_object"}
        return body

    async def _read_capped(self, request: ChatRequest, response: httpx.Response) -> bytes:
        """The body, refusing to hold more than ``max_response_bytes`` of it in memory."""
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                # an answer this long was generated (if the server answered at all): charge the most it may have
                # cost, which is also the most an answer that would have fitted may cost
                cost = (_prompt_tokens(request), request.max_tokens) if response.is_success else (0, 0)
                raise _Retryable("oversized_responses", f"response body over {self.max_response_bytes} bytes",
                                 tokens=cost)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _fetch(self, client: httpx.AsyncClient, request: ChatRequest) -> tuple[httpx.Response, bytes]:
        async with client.stream("POST", f"{self.base_url}/chat/completions", json=self._body(request)) as response:
            raw = await self._read_capped(request, response)
        return response, raw

    async def _once(self, client: httpx.AsyncClient, request: ChatRequest) -> Generation:
        try:
            # httpx's timeout bounds each read; this bounds the whole request, so a server
            # that sends one byte at a time cannot hold it forever
            response, raw = await asyncio.wait_for(self._fetch(client, request), self.timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
            raise _Retryable("timeouts", f"no complete answer within {self.timeout_s}s") from exc
        except httpx.TransportError as exc:
            raise _Retryable("connection_errors", f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429:
            raise _Retryable("http_429", "429 Too Many Requests", _retry_after_seconds(response))
        if status >= 500:
            raise _Retryable("http_5xx", f"HTTP {status}", _retry_after_seconds(response))
        if 300 <= status < 400:
            raise BackendError(self._redirect_advice(response))
        text_sample = raw[:300].decode("utf-8", "replace")
        if status in (401, 403):
            raise BackendError(
                f"{self.base_url} refused the request (HTTP {status}); check the API key in ${self.api_key_env}"
            )
        if status >= 400:
            raise BackendError(
                f"{self.base_url} rejected the request (HTTP {status}): {text_sample}; "
                "check extraction.model and extraction.json_mode"
            )
        return self._parse(request, response, raw)

    def _redirect_advice(self, response: httpx.Response) -> str:
        """What to do about a 3xx: equal does not follow redirects (a POST would lose its body)."""
        url = f"{self.base_url}/chat/completions"
        location = response.headers.get("location")
        if not location:
            return (f"{url} answered HTTP {response.status_code} (a redirect) without a Location; "
                    "set extraction.base_url to the URL the API is served at (for most servers it ends in /v1)")
        try:
            target = str(response.request.url.join(location))
        except (httpx.InvalidURL, RuntimeError):
            target = location
        base = target.split("?", 1)[0].rstrip("/")
        if base.endswith("/chat/completions") and base.removesuffix("/chat/completions") == self.base_url:
            # advising the URL already set would send the user in a circle
            return (f"{url} redirects (HTTP {response.status_code}) to itself ({target}), and "
                    f"extraction.base_url is already {self.base_url}; equal does not follow redirects. The server, "
                    "or a proxy in front of it, wants something equal does not send (a login, a cookie) or is "
                    f"misconfigured: see what it answers with `curl -i -X POST {url}` and fix it there")
        suggestion = (base.removesuffix("/chat/completions") if base.endswith("/chat/completions")
                      else "the URL the API is served at (the part before /chat/completions)")
        return (f"{url} redirects (HTTP {response.status_code}) to {target}; equal does not follow "
                f"redirects: set extraction.base_url to {suggestion}")

    def _parse(self, request: ChatRequest, response: httpx.Response, raw: bytes) -> Generation:
        """The generation in a 2xx body, or :class:`_Retryable` saying what is wrong with it (and its cost)."""
        sample = raw[:200].decode("utf-8", "replace")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: a body nested thousands deep
            cost = _attempt_cost(request, None, None, len(raw))
            if "html" in response.headers.get("content-type", "") or sample.lstrip().startswith("<"):
                raise _malformed("HTML, not JSON: is extraction.base_url the API's URL?", sample, cost) from exc
            raise _malformed("not JSON", sample, cost) from exc
        usage = data.get("usage") if isinstance(data, dict) else None
        text = _answer_text(data)
        repairs: set[str] = set()
        if text is not None:
            # a JSON escape such as \ud800 decodes to a lone surrogate, which no cache or file could store
            text, repairs = sanitize(text)
        cost = _attempt_cost(request, usage, text, len(raw))
        if not isinstance(data, dict) or "choices" not in data:
            raise _malformed("no 'choices'", sample, cost)
        choices = data["choices"]
        if not choices:
            raise _Retryable("empty_choices", "the response has no choices", tokens=cost)
        choice = choices[0] if isinstance(choices, list) else None
        if not isinstance(choice, dict):
            raise _malformed("choices[0] is not an object", sample, cost)
        message = choice.get("message")
        if not isinstance(message, dict) or "content" not in message:
            raise _malformed("no choices[0].message.content", sample, cost)
        if text is None:
            raise _malformed("content is neither text nor a list of content parts", sample, cost)
        if not text.strip():
            # null content (a refusal, a tool call, a server fault) is no answer: cached, it would give its
            # document no pairs on every rerun
            raise _Retryable("empty_content", f"the answer has no text (content {message['content']!r:.40})",
                             tokens=cost)
        if usage is not None and not isinstance(usage, dict):
            raise _malformed("usage is not an object", sample, cost)
        tokens_in = _token_count(usage, "prompt_tokens", sample, cost)
        tokens_out = _token_count(usage, "completion_tokens", sample, cost)
        metadata: dict[str, Any] = {"finish_reason": choice.get("finish_reason"), "response_id": data.get("id")}
        if tokens_in is None or tokens_out is None:
            tokens_in, tokens_out = cost
            metadata["tokens_estimated"] = True
            self.stats.inc("llm_usage_missing")
            if not self._warned_usage:
                self._warned_usage = True
                logger.warning("%s reports no token usage; counting ceil(characters / %d) of the prompt and "
                               "of the answer instead, so tokens_in, tokens_out and budget.tokens are estimates",
                               self.base_url, CHARS_PER_TOKEN)
        if choice.get("finish_reason") == "length":
            self.stats.inc("llm_truncated")
        for repair in sorted(repairs):  # of the answer kept, not of an attempt that is retried
            self.stats.inc(repair)
        return Generation(text=text, tokens_in=tokens_in, tokens_out=tokens_out, metadata=metadata)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s)
        delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        return delay * (0.5 + 0.5 * self._rng.random())

    async def _with_retries(self, client: httpx.AsyncClient, request: ChatRequest) -> Generation:
        last = _Retryable("none", "no attempt made")
        spent_in = spent_out = 0  # what the attempts the server answered unusably are charged
        for attempt in range(self.max_retries + 1):
            try:
                generation = await self._once(client, request)
            except _Retryable as exc:
                last = exc
                spent_in, spent_out = spent_in + exc.tokens[0], spent_out + exc.tokens[1]
                self.stats.inc(f"llm_{exc.kind}")
                if attempt == self.max_retries:
                    break
                self.stats.inc("llm_retries")
                delay = self._backoff(attempt, exc.retry_after)
                logger.warning("LLM request failed (%s); retry %d in %.1fs", exc, attempt + 1, delay)
                await asyncio.sleep(delay)
                continue
            if spent_in or spent_out:
                # the answer carries every attempt's cost, into the cache too: a rerun that replays it
                # charges the budget what the first run was charged, and so decides the same
                generation.tokens_in += spent_in
                generation.tokens_out += spent_out
                generation.metadata["tokens_estimated"] = True
            return generation
        if last.kind in CONTENT_FAULTS:
            # the server is up but this answer stays unusable: give up on this request only
            self.stats.inc("llm_failed_requests")
            logger.warning("giving up on one request after %d tries (%s); its document gets no pairs now and "
                           "is sent again when the same command runs again", self.max_retries + 1, last)
            return Generation(text="", tokens_in=spent_in, tokens_out=spent_out, error=f"{last.kind}: {last}",
                              metadata={"tokens_estimated": True})
        advice = (f"{self.base_url} failed {self.max_retries + 1} times in a row ({last}); "
                  "check that the server is up, then run the same command again: the run resumes "
                  "and every answer already received is kept")
        if last.kind == "http_429":
            raise RateLimited(advice)
        raise ServerUnavailable(advice)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="equal-openai", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def _pool(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The client and the limit on requests in flight (made on the loop, on first use)."""
        if self._client is None or self._slots is None:
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), limits=limits,
                                             headers=self._headers())
            self._slots = asyncio.Semaphore(self.concurrency)
        return self._client, self._slots

    async def _generate(self, requests: list[ChatRequest], on_result: OnResult | None) -> list[Generation]:
        client, slots = self._pool()

        async def one(i: int, request: ChatRequest) -> Generation:
            async with slots:
                generation = await self._with_retries(client, request)
            if on_result is not None:
                on_result(i, generation)
            return generation

        tasks = [asyncio.create_task(one(i, r)) for i, r in enumerate(requests)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def submit(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> Future[list[Generation]]:
        """Send ``requests`` and return at once; the future holds what :meth:`generate` returns.

        Batches submitted while others are in flight queue behind them for the
        same ``concurrency`` slots. ``on_result`` is called on the backend's
        thread. Cancelling the future cancels the batch's requests still in flight.
        """
        if not requests:
            done: Future[list[Generation]] = Future()
            done.set_result([])
            return done
        return asyncio.run_coroutine_threadsafe(self._generate(requests, on_result), self._running_loop())

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> list[Generation]:
        future = self.submit(requests, on_result)
        try:
            return future.result()
        except BaseException:  # Ctrl-C, or the run stopping: no request of this batch goes on without it
            future.cancel()
            raise

    async def _shutdown(self) -> None:
        """Cancel what is still in flight (a run that stopped early), then close the connections."""
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = self._client = self._slots = None


def _malformed(what: str, sample: str, tokens: tuple[int, int]) -> _Retryable:
    return _Retryable("malformed_responses", f"malformed response body ({what}): {sample!r}", tokens=tokens)


def _checked_count(value: object) -> int | None:
    """``value`` as a token count (``12.0`` is one; ``1e400``, ``1.5``, ``-1`` and ``"lots"`` are not)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and valid_token_count(value) else None


def _token_count(usage: dict[str, Any] | None, field: str, sample: str, cost: tuple[int, int]) -> int | None:
    """``usage[field]`` as a checked token count; ``None`` when the server left it out."""
    value = (usage or {}).get(field)
    if value is None:
        return None
    count = _checked_count(value)
    if count is None:
        shown = ("negative" if value < 0 else "over the limit") if isinstance(value, int) else repr(value)[:40]
        raise _malformed(f"usage.{field} is {shown}, not a token count from 0 to {MAX_TOKENS_PER_CALL:,}", sample,
                         cost)
    return count


def _prompt_tokens(request: ChatRequest) -> int:
    """The estimate of a request's prompt tokens."""
    return estimate_tokens("".join(str(m.get("content", "")) for m in request.messages))


def _attempt_cost(request: ChatRequest, usage: object, text: str | None, body_bytes: int) -> tuple[int, int]:
    """What one answered attempt is charged: the server's counts where they are usable, else estimates.

    The prompt is estimated from its characters; the answer from its text, or,
    when there is none to read, from the body's bytes, at most the request's
    ``max_tokens`` (the most the server was asked to generate).
    """
    counts = usage if isinstance(usage, dict) else {}
    tokens_in = _checked_count(counts.get("prompt_tokens"))
    tokens_out = _checked_count(counts.get("completion_tokens"))
    if tokens_in is None:
        tokens_in = _prompt_tokens(request)
    if tokens_out is None:
        tokens_out = (estimate_tokens(text) if text is not None
                      else min(math.ceil(body_bytes / CHARS_PER_TOKEN), request.max_tokens))
    return tokens_in, tokens_out


def _answer_text(data: object) -> str | None:
    """The text of ``choices[0].message.content`` if the body has one that can be read, else ``None``."""
    choices = data.get("choices") if isinstance(data, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    return _content_text(message.get("content")) if isinstance(message, dict) else None


def _content_text(content: object) -> str | None:
    """The text of a message's ``content``: a string, ``null``, or a list of content parts.

    Text parts (``{"type": "text", "text": ...}``) are concatenated; other parts (images,
    refusals) are skipped. ``None`` when ``content`` has none of these forms.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            if part.get("type", "text") == "text":
                if not isinstance(part.get("text"), str):
                    return None
                texts.append(part["text"])
        else:
            return None
    return "".join(texts)

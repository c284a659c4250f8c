"""A scripted OpenAI-compatible chat server on loopback, for tests of the HTTP backend.

It answers ``POST /v1/chat/completions`` with a function of the request,
after playing any scripted faults first, and counts every request it saw
(by prompt hash) so tests can check that nothing was sent twice. The
reply's ``id`` is ``chatcmpl-<prompt hash>``, and ``in_flight`` holds the
hashes of requests received but not yet answered.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    """One scripted misbehaviour: ``status`` code (with optional ``retry_after``),
    ``sleep`` seconds before answering (to force a client timeout), ``body`` to
    send instead of a valid answer, ``oversized`` to send a valid answer padded
    to that many bytes, or ``drop`` to close the connection unanswered."""

    status: int = 200
    retry_after: float | None = None
    sleep: float = 0.0
    body: str | None = None
    drop: bool = False
    oversized: int = 0


def document_text(messages: list[dict[str, str]]) -> str:
    """The document inside an extraction prompt."""
    user = messages[-1]["content"] if messages else ""
    return user.split("<document>", 1)[-1].split("</document>", 1)[0].strip()


def default_answer(messages: list[dict[str, str]]) -> str:
    """A deterministic extraction answer: one pair naming the document's first words."""
    doc = document_text(messages)
    head = " ".join(doc.split()[:8])
    return json.dumps({"pairs": [{"question": f"What does the text say about {head}?", "answer": doc[:200]}]})


class FakeOpenAIServer:
    """Context manager running the server on ``127.0.0.1`` on a free port.

    Args:
        answer: maps the request's messages to the content of the reply.
        faults: played in order, one per request, before normal answers resume.
        latency: seconds every normal answer waits, like a real model generating.
    """

    def __init__(self, answer: Callable[[list[dict[str, str]]], str] = default_answer,
                 faults: list[Fault] | None = None, latency: float = 0.0) -> None:
        self.answer = answer
        self.faults = list(faults or [])
        self.latency = latency
        self.requests: Counter[str] = Counter()
        self.in_flight: set[str] = set()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def __enter__(self) -> FakeOpenAIServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                messages = body.get("messages", [])
                key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
                with fake._lock:
                    fake.requests[key] += 1
                    fake.bodies.append(body)
                    fake.headers.append(dict(self.headers))
                    fake.in_flight.add(key)
                try:
                    self._answer(key, body, messages)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a killed run): nothing to answer
                finally:
                    with fake._lock:
                        fake.in_flight.discard(key)

            def _answer(self, key: str, body: dict[str, Any], messages: list[dict[str, str]]) -> None:
                fault = fake._next_fault()
                if fault is not None:
                    if fault.sleep:
                        time.sleep(fault.sleep)
                    if fault.drop:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if fault.status != 200 or fault.body is not None:
                        payload = (fault.body or json.dumps({"error": "scripted"})).encode()
                        self.send_response(fault.status)
                        if fault.retry_after is not None:
                            self.send_header("Retry-After", str(fault.retry_after))
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                if fake.latency:
                    time.sleep(fake.latency)
                content = fake.answer(messages)
                if fault is not None and fault.oversized:
                    content += " " * fault.oversized
                payload = json.dumps({
                    "id": f"chatcmpl-{key}", "object": "chat.completion", "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": sum(len(m["content"].split()) for m in messages),
                              "completion_tokens": len(content.split())},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

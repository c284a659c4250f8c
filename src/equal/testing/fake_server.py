"""A scripted OpenAI-compatible chat server on loopback, for tests of the HTTP backend.

It answers ``POST /v1/chat/completions`` with a function of the request,
after playing any scripted faults first (or the fault ``fault_for`` picks
for that request), and counts every request it saw (by prompt hash) so
tests can check that nothing was sent twice. The reply's ``id`` is
``chatcmpl-<prompt hash>``, and ``in_flight`` holds the hashes of requests
received but not yet answered; ``intervals`` holds when each normal answer's
request arrived and when its answer was sent, which the throughput benchmark
uses to measure how busy the server's request slots were.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union


@dataclass
class Fault:
    """One scripted misbehaviour.

    Instead of a valid answer: ``status`` code (with optional ``retry_after``
    and ``location`` headers), ``body`` sent as is (with ``content_type``),
    or ``drop`` to close the connection unanswered. ``sleep`` seconds pass
    before anything is sent (to force a client timeout).

    Or a valid answer with a twist: ``oversized`` pads it to that many bytes,
    ``content_parts`` sends the content as a list of text parts (the newer
    OpenAI message format), ``usage`` replaces the ``usage`` object by this
    raw JSON text (``"null"``, ``'"lots"'``, ``'{"prompt_tokens": 1e400}'``),
    ``omit_usage`` leaves it out, and ``drip`` sends the body one byte at a
    time, pausing that many seconds between bytes.
    """

    status: int = 200
    retry_after: float | None = None
    sleep: float = 0.0
    body: str | None = None
    drop: bool = False
    oversized: int = 0
    location: str | None = None
    content_type: str = "application/json"
    content_parts: bool = False
    usage: str | None = None
    omit_usage: bool = False
    drip: float = 0.0


def document_text(messages: list[dict[str, str]]) -> str:
    """The document inside an extraction prompt."""
    user = messages[-1]["content"] if messages else ""
    return user.split("<document>", 1)[-1].split("</document>", 1)[0].strip()


def default_answer(messages: list[dict[str, str]]) -> str:
    """A deterministic extraction answer: one pair naming the document's first words."""
    doc = document_text(messages)
    head = " ".join(doc.split()[:8])
    return json.dumps({"pairs": [{"question": f"What does the text say about {head}?", "answer": doc[:200]}]})


class _Server(ThreadingHTTPServer):
    # the standard library's backlog of 5 resets connections when a client opens dozens at once
    request_queue_size = 256
    daemon_threads = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.handling = 0  # connections accepted and not yet handled to their end
        self.handled = threading.Condition()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.handled:
            self.handling += 1
        try:
            super().process_request(request, client_address)
        except BaseException:  # no handler thread started: nothing will count this connection down
            with self.handled:
                self.handling -= 1
                self.handled.notify_all()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.handled:
                self.handling -= 1
                self.handled.notify_all()


Latency = Union[float, Callable[[], float]]
"""Seconds a normal answer waits: fixed, or drawn per request (a function called once per answer)."""


class FakeOpenAIServer:
    """Context manager running the server on ``127.0.0.1`` on a free port.

    Args:
        answer: maps the request's messages to the content of the reply.
        faults: played in order, one per request, before normal answers resume.
        latency: seconds every normal answer waits, like a real model generating;
            a function gives each answer its own (e.g. drawn from a lognormal).
        keep_alive: speak HTTP/1.1 and keep connections open, as vLLM and SGLang do
            (the default, HTTP/1.0, closes each connection after its answer).
        fault_for: once ``faults`` is used up, maps each request's messages to the
            fault to play for it (``None``: a normal answer), so a test can make
            chosen documents fail every time whatever the order of requests.
    """

    def __init__(self, answer: Callable[[list[dict[str, str]]], str] = default_answer,
                 faults: list[Fault] | None = None, latency: Latency = 0.0,
                 fault_for: Callable[[list[dict[str, str]]], Fault | None] | None = None,
                 keep_alive: bool = False) -> None:
        self.answer = answer
        self.faults = list(faults or [])
        self.latency = latency
        self.fault_for = fault_for
        self.keep_alive = keep_alive
        self.intervals: list[tuple[float, float]] = []
        self.requests: Counter[str] = Counter()
        self.in_flight: set[str] = set()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server: _Server | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _next_fault(self, messages: list[dict[str, str]]) -> Fault | None:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
        return self.fault_for(messages) if self.fault_for is not None else None

    def __enter__(self) -> FakeOpenAIServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if fake.keep_alive else "HTTP/1.0"

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
                    self._answer(key, body, messages, time.monotonic())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a killed run): nothing to answer
                finally:
                    with fake._lock:
                        fake.in_flight.discard(key)

            def _send(self, status: int, payload: bytes, fault: Fault | None) -> None:
                self.send_response(status)
                if fault is not None and fault.retry_after is not None:
                    self.send_header("Retry-After", str(fault.retry_after))
                if fault is not None and fault.location is not None:
                    self.send_header("Location", fault.location)
                self.send_header("Content-Type", fault.content_type if fault is not None else "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if fault is None or not fault.drip:
                    self.wfile.write(payload)
                    return
                for i in range(len(payload)):  # a slowloris answer: one byte, then a pause
                    if fake._stopped.wait(fault.drip):
                        return
                    self.wfile.write(payload[i:i + 1])
                    self.wfile.flush()

            def _answer(self, key: str, body: dict[str, Any], messages: list[dict[str, str]],
                        arrived: float) -> None:
                fault = fake._next_fault(messages)
                if fault is not None:
                    if fault.sleep:
                        time.sleep(fault.sleep)
                    if fault.drop:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if fault.status != 200 or fault.body is not None:
                        payload = (fault.body if fault.body is not None else json.dumps({"error": "scripted"}))
                        self._send(fault.status, payload.encode(), fault)
                        return
                latency = fake.latency() if callable(fake.latency) else fake.latency
                if latency:
                    time.sleep(latency)
                content = fake.answer(messages)
                if fault is not None and fault.oversized:
                    content += " " * fault.oversized
                message: dict[str, Any] = {"role": "assistant", "content": content}
                if fault is not None and fault.content_parts:
                    half = len(content) // 2
                    message["content"] = [{"type": "text", "text": content[:half]},
                                          {"type": "text", "text": content[half:]}]
                reply: dict[str, Any] = {
                    "id": f"chatcmpl-{key}", "object": "chat.completion", "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                    "usage": {"prompt_tokens": sum(len(m["content"].split()) for m in messages),
                              "completion_tokens": len(content.split())},
                }
                if fault is not None and (fault.omit_usage or fault.usage is not None):
                    del reply["usage"]
                text = json.dumps(reply)
                if fault is not None and fault.usage is not None:
                    text = text[:-1] + f', "usage": {fault.usage}}}'  # raw JSON: 1e400, 10**30 spelt out
                self._send(200, text.encode(), fault)
                with fake._lock:
                    fake.intervals.append((arrived, time.monotonic()))

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()  # ends any answer still dripping
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def settle(self, timeout: float = 60) -> None:
        """Wait until every connection opened so far is handled to its end.

        A client killed just after writing a request is gone before the server
        has read it; once this returns, that request is counted. A connection a
        live client keeps open (``keep_alive``) is never handled to its end: close
        the client first, or this raises ``TimeoutError``.
        """
        server = self._server
        if server is None:
            raise RuntimeError("server not started")
        # connections are accepted in the order they were opened: once this one is answered,
        # every earlier one has a handler, and the count below covers it
        probe = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=timeout)
        try:
            probe.request("GET", "/settle")  # answered 501: only POST is served
            probe.getresponse().read()
        finally:
            probe.close()
        with server.handled:
            if not server.handled.wait_for(lambda: server.handling == 0, timeout):
                raise TimeoutError(f"the fake server still handles {server.handling} connections")

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

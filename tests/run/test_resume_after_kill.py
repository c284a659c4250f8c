"""Kill a run with SIGKILL at random points, resume it, and compare with a run never interrupted.

The run is a real ``equal run`` process talking to a real HTTP server on
loopback that counts every request by prompt. The test kills it at least 20
times, aimed at each stage in turn (embedding, warm-up extraction, k-means,
bandit rounds, writing the dataset) with a random delay, then lets it finish.
"""

from __future__ import annotations

import hashlib
import json
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

from equal.testing import FakeOpenAIServer
from equal.testing.fake_server import document_text
from tests.helpers import make_corpus, make_reference

CONCURRENCY = 4
# stage to aim at -> longest random delay (s) after its start before the kill
TARGETS = {"embedding documents": 0.0, "warm-up extraction": 0.2, "k-means": 0.0,
           "bandit rounds (documents)": 0.3, "writing dataset and logs": 0.0}
# Kills aimed at the warm-up and the bandit (where paid calls are in flight) come early: aiming at
# the last stage lets the run finish every extraction first, after which resumes only replay the
# cache. The warm-up comes second, while its answers are not cached yet: once they are, it lasts
# a few milliseconds and a kill aimed at it lands in a later stage; it is aimed at twice in a row, since
# on a loaded machine the first kill may land before its first answer is sent.
_E, _W, _K, _B, _O = TARGETS
ORDER = [_E, _W, _W, _B, _K, _B, _E, _B, _W, _B, _K, _B, _O, _B, _E, _O, _K, _W, _O, _B]


def _write_config(path: Path, corpus: Path, reference: Path, base_url: str, run_dir: Path) -> Path:
    config = {
        "corpus": {"path": str(corpus), "id_field": "id", "label_field": "source"},
        "reference": {"path": str(reference)},
        "embedding": {"model": "hashing-256"},
        "clustering": {"k": 12},
        "budget": {"fraction": 0.3},
        "extraction": {"extractor": "openai", "model": "fake", "base_url": base_url, "concurrency": CONCURRENCY,
                       "max_retries": 2, "timeout_s": 120},  # long: the lock check stops the child
        "output": {"dir": str(run_dir)},
        "seed": 7,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _documents_of(server: FakeOpenAIServer, keys: set[str]) -> list[str]:
    """The start of the document each of ``keys`` (the server's prompt keys) asked about, to say what went astray."""
    out = []
    for body in server.bodies:
        messages = body.get("messages", [])
        if hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest() in keys:
            out.append(document_text(messages)[:60])
    return out


class _Child:
    """``equal run --log-format json`` in a subprocess, its events read by a thread."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "equal.cli.main", "run", str(config),
                                      "--log-format", "json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue[dict] = queue.Queue()
        self.stages: list[str] = []
        self.warnings: list[str] = []  # a failed answer in a killed run changes that run's choices
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:
                pass

    def wait_for_stage(self, prefix: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.01)
            except queue.Empty:
                if self.proc.poll() is not None and self.events.empty():
                    return False
                continue
            if event["event"] == "stage_start":
                self.stages.append(event["stage"])
                if event["stage"].startswith(prefix):
                    return True
            elif event["event"] == "log" and event.get("level") in ("warning", "error"):
                self.warnings.append(event.get("message", "")[:120])
        return False

    def drain(self) -> None:
        """Take the events the process wrote before it ended."""
        self._reader.join(timeout=5)
        while not self.events.empty():
            event = self.events.get()
            if event["event"] == "stage_start":
                self.stages.append(event["stage"])
            elif event["event"] == "log" and event.get("level") in ("warning", "error"):
                self.warnings.append(event.get("message", "")[:120])


def _stored_prompts(run_dir: Path) -> set[str]:
    """Prompt hashes whose answers the killed process had committed to its response cache."""
    path = run_dir / "cache" / "responses.sqlite"
    if not path.exists():
        return set()
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT metadata FROM responses").fetchall()
    except sqlite3.OperationalError:  # killed before the table was created
        rows = []
    db.close()
    return {json.loads(m)["response_id"].removeprefix("chatcmpl-") for (m,) in rows}


def _dataset(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "dataset.jsonl").read_text().splitlines()]


def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_dataset(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.jsonl", n_relevant=80, n_other=320)
    reference = make_reference(tmp_path / "reference.jsonl")
    rng = random.Random(2026)

    with FakeOpenAIServer(latency=0.1) as clean_server:
        clean_dir = tmp_path / "clean"
        child = _Child(_write_config(tmp_path / "clean.yaml", corpus, reference, clean_server.base_url, clean_dir))
        assert child.proc.wait(timeout=300) == 0, child.proc.stderr.read() if child.proc.stderr else ""
    expected = _dataset(clean_dir)
    assert expected and max(clean_server.requests.values()) == 1

    kills: list[tuple[str, str, int]] = []  # (aimed at, stage at the kill, requests lost in flight)
    warnings: list[str] = []
    lost: Counter[str] = Counter()
    with FakeOpenAIServer(latency=0.1) as server:
        run_dir = tmp_path / "killed"
        config = _write_config(tmp_path / "killed.yaml", corpus, reference, server.base_url, run_dir)
        targets = ORDER
        attempt, locked_checked = 0, False
        while len(kills) < 20 and attempt < 80:
            target = targets[attempt % len(targets)]
            attempt += 1
            sent_before = Counter(server.requests)
            child = _Child(config)
            if child.wait_for_stage(target):
                # a second run on the same directory must refuse to start; the child is stopped meanwhile,
                # so it still holds the lock however slow the second start is
                if not locked_checked and target == _B:
                    child.proc.send_signal(signal.SIGSTOP)
                    try:
                        second = subprocess.run([sys.executable, "-m", "equal.cli.main", "run", str(config), "-q"],
                                                capture_output=True, text=True, timeout=120)
                    finally:
                        child.proc.send_signal(signal.SIGCONT)
                    assert second.returncode == 2 and "another equal process" in second.stderr
                    locked_checked = True
                time.sleep(rng.uniform(0, TARGETS[target]))
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGKILL)
                child.proc.wait()
                server.settle()  # a request written just before the kill is counted before it is looked at
                child.drain()
                sent = {p for p, n in server.requests.items() if n > sent_before[p]}
                in_flight = sent - _stored_prompts(run_dir)  # sent by this process, answer never stored
                lost.update(in_flight)
                kills.append((target, child.stages[-1] if child.stages else "starting", len(in_flight)))
                warnings += child.warnings
            else:
                child.proc.wait()
                server.settle()
        assert locked_checked
        final = _Child(config)
        assert final.proc.wait(timeout=300) == 0, final.proc.stderr.read() if final.proc.stderr else ""

    # every resume finished and the data equal that of the uninterrupted run: none lost, none duplicated
    assert _dataset(run_dir) == expected
    assert len({(r["provenance"]["document_id"], r["messages"][0]["content"]) for r in expected}) == len(expected)
    # the same prompts were sent, and a prompt went out again only if its answer was in flight at a kill
    extra = set(server.requests) - set(clean_server.requests)
    assert not extra and set(server.requests) == set(clean_server.requests), (
        f"prompts the uninterrupted run never sent: {_documents_of(server, extra)}; kills (target, stage, lost): "
        f"{kills}; warnings of the killed runs: {warnings}")
    for prompt, count in server.requests.items():
        assert count <= 1 + lost[prompt], f"an answer already stored was requested again ({count} times)"
    assert sum(lost.values()) <= CONCURRENCY * len(kills)

    assert len(kills) >= 20, f"only {len(kills)} kills landed in {attempt} attempts"
    stages_hit = {stage.split(",")[0] for _, stage, _ in kills}
    assert {"warm-up extraction", "bandit rounds (documents)"} <= stages_hit and len(stages_hit) >= 4, stages_hit
    summary = Counter(stage.split(",")[0] for _, stage, _ in kills)
    print(f"\n{len(kills)} kills in {attempt} attempts; at stage: {dict(summary)}; "
          f"requests re-sent after being lost in flight: {sum(server.requests.values()) - len(server.requests)}")


def test_server_that_stays_down_stops_the_run_and_the_rerun_completes(tmp_path):
    """The server dies mid-run: the run stops with a clear message; once it is back, the rerun finishes."""
    from equal.testing import Fault

    corpus = make_corpus(tmp_path / "corpus.jsonl")
    reference = make_reference(tmp_path / "reference.jsonl")
    with FakeOpenAIServer() as clean_server:
        clean = _write_config(tmp_path / "clean.yaml", corpus, reference, clean_server.base_url, tmp_path / "clean")
        assert subprocess.run([sys.executable, "-m", "equal.cli.main", "run", str(clean), "-q"],
                              capture_output=True, timeout=300).returncode == 0
    # ten good answers, then 503 on everything the run tries
    faults = [Fault()] * 10 + [Fault(status=503)] * 1000
    with FakeOpenAIServer(faults=faults) as server:
        config = _write_config(tmp_path / "run.yaml", corpus, reference, server.base_url, tmp_path / "run")
        cfg = yaml.safe_load(config.read_text())
        cfg["extraction"]["concurrency"] = 1
        config.write_text(yaml.safe_dump(cfg))
        failed = subprocess.run([sys.executable, "-m", "equal.cli.main", "run", str(config), "-q"],
                                capture_output=True, text=True, timeout=300)
        assert failed.returncode == 2
        assert "failed 3 times in a row" in failed.stderr and "run the same command again" in failed.stderr
        answered = _stored_prompts(tmp_path / "run")
        assert len(answered) == 10
        server.faults.clear()  # the server is back
        assert subprocess.run([sys.executable, "-m", "equal.cli.main", "run", str(config), "-q"],
                              capture_output=True, timeout=300).returncode == 0
        # the ten answers received before the outage were not asked for again
        assert all(server.requests[p] == 1 for p in answered)
    assert _dataset(tmp_path / "run") == _dataset(tmp_path / "clean")

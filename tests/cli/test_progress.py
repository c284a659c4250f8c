"""Progress that moves: per document and per embedding batch, rows that fit 80 columns, lines in a log."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from equal.cli.main import app
from equal.cli.progress import RichProgress
from equal.embedding import EmbeddingCache, HashingEmbedder, embed_cached
from equal.embedding.store import embed_to_store
from equal.extraction.extractor import LLMExtractor, ReplayExtractor
from equal.extraction.task import ExtractionTask
from equal.llm.base import ChatRequest, GeneratesInPlace, OnResult
from equal.progress import ItemsDone
from equal.records import Document, Generation
from equal.run.budget import Budget
from equal.run.warmup import run_warmup
from equal.stats import Stats
from tests.helpers import make_bench, make_corpus


class Recorded:
    """A progress that records every advance of every task."""

    def __init__(self) -> None:
        self.steps: dict[str, list[int]] = {}

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Recorded]:
        self._current = self.steps.setdefault(description, [])
        yield self

    def advance(self, n: int = 1) -> None:
        self._current.append(n)

    def note(self, text: str) -> None:
        pass


# -- the warm-up and extract move per document ------------------------------------------------------------


def _documents(n: int) -> list[Document]:
    return [Document(id=f"d{i}", text=f"passage {i} about python lists", metadata={
        "qa_pairs": [{"question": f"q{i}?", "answer": f"a{i}."}]}) for i in range(n)]


def test_the_warm_up_bar_moves_per_document_not_per_batch():
    documents = _documents(40)
    extractor = ReplayExtractor()
    progress = Recorded()
    warmup, _ = run_warmup(20, "random", np.zeros(40),
                           lambda batch, done: extractor.submit([documents[i] for i in batch], done).rest(),
                           Budget(max_documents=20), np.random.default_rng(0), progress, Stats())
    assert len(warmup.documents) == 20
    assert progress.steps["warm-up extraction"] == [1] * 20


class SlowLLM(GeneratesInPlace):
    """Answers one request at a time, recording how far the bar had moved before each answer."""

    name = "slow"

    def __init__(self, progress: Recorded) -> None:
        self.progress = progress
        self.seen: list[int] = []

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> list[Generation]:
        out = []
        for i, _ in enumerate(requests):
            self.seen.append(sum(self.progress.steps.get("warm-up extraction", [])))
            generation = Generation(text='[{"question": "Why?", "answer": "Because."}]', tokens_in=10, tokens_out=5)
            if on_result is not None:
                on_result(i, generation)
            out.append(generation)
        return out

    def close(self) -> None:
        pass


def test_an_llm_extractor_advances_the_bar_as_each_answer_arrives():
    documents = _documents(40)
    progress = Recorded()
    llm = SlowLLM(progress)
    extractor = LLMExtractor(llm, ExtractionTask())
    run_warmup(8, "random", np.zeros(40),
               lambda batch, done: extractor.submit([documents[i] for i in batch], done).rest(),
               Budget(max_documents=8), np.random.default_rng(0), progress, Stats())
    assert llm.seen == list(range(8))  # the bar had moved by one before each next answer
    assert progress.steps["warm-up extraction"] == [1] * 8


def test_extract_all_moves_per_passage(tmp_path):
    from equal.config import load_config
    from equal.run.extract_all import extract_all

    corpus = make_corpus(tmp_path / "corpus.jsonl", n_relevant=10, n_other=30)
    config = load_config(None, {"corpus.path": str(corpus), "corpus.id_field": "id",
                                "extraction.extractor": "replay"})
    progress = Recorded()
    extract_all(config, tmp_path / "out.jsonl", progress=progress)
    assert progress.steps["extracting every passage"] == [0] + [1] * 40


# -- the embedders move per batch, with the same vectors --------------------------------------------------


class BatchedEmbedder(HashingEmbedder):
    """Reports every ``batch`` texts, as the sentence-transformers embedder does after each forward pass."""

    def __init__(self, batch: int) -> None:
        super().__init__(64)
        self.batch = batch

    def encode_counting(self, texts: list[str], done: ItemsDone) -> np.ndarray:
        for start in range(0, len(texts), self.batch):
            done(len(texts[start:start + self.batch]))
        return super().encode(texts)


def test_the_document_store_moves_per_encoder_batch(tmp_path):
    texts = [f"text number {i}" for i in range(100)]
    progress = Recorded()
    vectors = embed_to_store(BatchedEmbedder(16), texts, tmp_path / "store.npy", chunk_size=64, progress=progress)
    assert progress.steps["embedding"] == [0, 16, 16, 16, 16, 16, 16, 4]  # per batch inside each chunk
    assert np.array_equal(vectors, HashingEmbedder(64).encode(texts))


def test_cached_embedding_moves_per_encoder_batch(tmp_path):
    texts = [f"text number {i}" for i in range(50)]
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    embed_cached(BatchedEmbedder(8), texts[:10], cache)
    progress = Recorded()
    vectors = embed_cached(BatchedEmbedder(8), texts, cache, progress=progress)
    assert progress.steps["embedding"] == [10, 8, 8, 8, 8, 8]
    assert np.array_equal(vectors, HashingEmbedder(64).encode(texts))


@pytest.mark.slow
def test_minilm_reports_each_forward_pass_and_its_vectors_stay_bit_identical(tmp_path):
    from equal.embedding import SentenceTransformerEmbedder

    texts = [("word " * (i % 13 + 1)) + str(i) for i in range(10)]
    embedder = SentenceTransformerEmbedder(device="cpu", batch_size=4)
    plain = embedder.encode(texts)  # one encode call, no bar: what every earlier version stored
    progress = Recorded()
    stored = embed_to_store(embedder, texts, tmp_path / "store.npy", progress=progress)
    assert progress.steps["embedding"] == [0, 4, 4, 2]
    assert np.asarray(stored).tobytes() == plain.tobytes()


# -- rows that fit 80 columns -------------------------------------------------------------------------------

_NOTE = ("round 12 | 1,234 calls, 1,234,567 tokens, best cluster 17 at reward 0.1234, mean reward 0.0123, "
         "and a tail that never fits")


def _render(progress: RichProgress, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, force_terminal=True)
    console.print(progress.renderable)
    return console.export_text().splitlines()


def test_every_row_fits_80_columns_with_its_bar_count_and_eta():
    console = Console(width=80, record=True, force_terminal=True)
    progress = RichProgress(console)
    with progress.task("embedding documents (aligned with the reference)", 1_000_000) as task:
        task.advance(1_000_000)
    with progress.task("bandit rounds (documents)", 20_000) as task:
        task.advance(1234)
        task.note(_NOTE)
        lines = _render(progress)
    assert all(len(line) <= 80 for line in lines), lines
    rows = [line for line in lines if "━" in line or "╸" in line]
    assert len(rows) == 2
    assert "1000000/1000000" in rows[0] and "embedding documents" in rows[0] and "…" in rows[0]
    assert "1234/20000" in rows[1] and "bandit rounds (documents)" in rows[1]
    assert all(" eta " in row for row in rows)
    note = lines[lines.index(rows[1]) + 1]
    assert note.strip().startswith("round 12 | 1,234 calls") and note.rstrip().endswith("…")


def test_the_live_display_stays_within_80_columns():
    console = Console(width=80, record=True, force_terminal=True)
    with RichProgress(console) as progress, progress.task("warm-up extraction", 8) as task:
        for _ in range(8):
            task.advance()
            task.note(_NOTE)
    final = _render(progress)
    assert all(len(line) <= 80 for line in final)
    assert "8/8" in final[0] and " eta " in final[0]


# -- a log, not a terminal: plain lines as it goes --------------------------------------------------------------


def test_without_a_terminal_each_step_and_note_is_a_line_as_it_happens():
    out = io.StringIO()
    progress = RichProgress(Console(file=out, width=80), interval=0)
    assert not progress.console.is_terminal
    with progress, progress.task("bench runs", 3) as task:
        assert out.getvalue().splitlines() == ["bench runs: started, 3 to do"]
        task.advance()
        task.note("python_faq: EQUAL at 5%, seed 0")
        lines = out.getvalue().splitlines()
        assert lines[1].startswith("bench runs: 1/3 (33%), 0:00:00 elapsed, eta ")
        assert lines[2].endswith("| python_faq: EQUAL at 5%, seed 0")
    assert out.getvalue().splitlines()[-1].startswith("bench runs: finished, 1/3 (33%)")


def test_without_a_terminal_count_lines_come_at_most_every_interval():
    out = io.StringIO()
    progress = RichProgress(Console(file=out, width=80), interval=3600)
    with progress, progress.task("embedding", 1000) as task:
        task.advance(1000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0] == "embedding: started, 1000 to do"
    assert lines[1].startswith("embedding: finished, 1000/1000 (100%)")


# -- equal bench reports like equal run -----------------------------------------------------------------------

_BENCH = ["--embedding", "hashing-256", "--budget", "0.1", "--seed", "0", "--reference-set", "champ",
          "--strategy", "random documents", "--strategy", "all"]


def test_bench_writes_a_json_event_per_finished_run(tmp_path):
    data = make_bench(tmp_path / "bench")
    result = CliRunner().invoke(app, ["bench", str(data), "--out", str(tmp_path / "out"), "--log-format", "json",
                                      *_BENCH])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    cells = [e for e in events if e["event"] == "cell"]
    assert [(c["strategy"], c["llm_calls"]) for c in cells] == [("random documents", 30), ("all", 300)]
    assert events[-1]["event"] == "result" and events[-1]["cells"] == 2
    assert events[-1]["results"].endswith("results.md")


def test_bench_in_a_log_writes_a_line_per_finished_run_and_is_silent_with_quiet(tmp_path):
    data = make_bench(tmp_path / "bench")
    result = CliRunner().invoke(app, ["bench", str(data), "--out", str(tmp_path / "out"), *_BENCH])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("bench runs:")]
    assert lines[0] == "bench runs: started, 2 to do"
    assert any(line.endswith("| champ: random documents at 10%, seed 0") for line in lines)
    assert any(line.startswith("bench runs: 2/2") and line.endswith("| champ: all at 10%, seed 0") for line in lines)
    quiet = CliRunner().invoke(app, ["bench", str(data), "--out", str(tmp_path / "again"), "--quiet", *_BENCH])
    assert quiet.exit_code == 0, quiet.output
    assert "bench runs" not in quiet.stderr


def test_the_rounds_bar_moves_per_document_not_per_round(replay_config):
    from equal import run

    progress = Recorded()
    result = run(replay_config(**{"bandit.docs_per_pull": 4, "bandit.clusters_per_round": 2}), progress=progress)
    steps = progress.steps["bandit rounds (documents)"]
    bandit_documents = len(result.selected_documents) - result.summary.warmup_documents
    assert sum(steps) == bandit_documents and set(steps) == {1}

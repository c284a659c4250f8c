"""Shared fixtures: small corpora with a known relevant source, and configs that run in seconds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import settings

from equal.config import load_config

# Hypothesis fails an example slower than 200 ms; on a loaded shared machine one stall is enough,
# and these tests are about what the code does, not how fast.
settings.register_profile("equal", deadline=None)
settings.load_profile("equal")

FIXTURES = Path(__file__).parent / "fixtures"

# Two vocabularies: documents about Python programming (relevant to the reference
# set) and documents about unrelated topics. The hashing embedder separates them.
_PYTHON_WORDS = ("python function list dictionary loop class module import exception string integer "
                 "variable return yield generator decorator iterator tuple lambda syntax interpreter").split()
_OTHER_WORDS = ("river mountain empire war king painting music opera football planet volcano forest "
                "ocean city village harvest bread cathedral poem novel ancient").split()


def _text(rng: random.Random, words: list[str], n: int = 30) -> str:
    return " ".join(rng.choice(words) for _ in range(n)) + "."


def make_corpus(path: Path, n_relevant: int = 40, n_other: int = 160, seed: int = 0) -> Path:
    """A JSONL corpus with ``source`` labels and stored pairs for the replay extractor."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_relevant + n_other):
        relevant = i < n_relevant
        words = _PYTHON_WORDS if relevant else _OTHER_WORDS
        text = _text(rng, words)
        pairs = [{"question": f"Explain {_text(rng, words, 6)}", "answer": _text(rng, words, 12)}]
        rows.append({"id": f"{'py' if relevant else 'ot'}-{i}", "text": text,
                     "source": "python" if relevant else "other", "qa_pairs": pairs})
    rng.shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_reference(path: Path, n: int = 20, seed: int = 1) -> Path:
    rng = random.Random(seed)
    rows = [{"question": f"How do I {_text(rng, _PYTHON_WORDS, 6)}", "answer": _text(rng, _PYTHON_WORDS, 12)}
            for _ in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def corpus_path(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "corpus.jsonl")


@pytest.fixture
def reference_path(tmp_path: Path) -> Path:
    return make_reference(tmp_path / "reference.jsonl")


@pytest.fixture
def replay_config(tmp_path: Path, corpus_path: Path, reference_path: Path):
    """A config that runs the whole pipeline in seconds: hashing embedder, replayed pairs."""
    def make(**overrides):
        base = {
            "corpus.path": str(corpus_path), "corpus.id_field": "id", "corpus.label_field": "source",
            "reference.path": str(reference_path), "embedding.model": "hashing-256",
            "extraction.extractor": "replay", "budget.fraction": 0.2, "clustering.k": 10,
            "output.dir": str(tmp_path / "run"),
        }
        base.update(overrides)
        return load_config(None, base)
    return make

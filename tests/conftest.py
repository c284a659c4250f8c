"""Shared fixtures: small corpora with a known relevant source, and configs that run in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from equal.config import load_config
from tests.helpers import make_corpus, make_reference

# Hypothesis fails an example slower than 200 ms; on a loaded shared machine one stall is enough,
# and these tests are about what the code does, not how fast.
settings.register_profile("equal", deadline=None)
settings.load_profile("equal")


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

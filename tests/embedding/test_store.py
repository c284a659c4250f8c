"""The memory-mapped store of document vectors: resumed after a kill, one file per list of texts."""

from __future__ import annotations

import json

import numpy as np

from equal.embedding import HashingEmbedder
from equal.embedding.store import embed_to_store, store_path
from tests.helpers import CountingEmbedder


def test_store_is_memory_mapped_and_resumes_after_a_kill(tmp_path):
    texts = [f"document number {i} about topic {i % 7}" for i in range(1000)]
    path = store_path(tmp_path, "hashing-64", texts)
    dying = CountingEmbedder(fail_after=300)
    try:
        embed_to_store(dying, texts, path, chunk_size=100)
    except KeyboardInterrupt:
        pass
    assert json.loads(path.with_suffix(".json").read_text())["done"] == 300
    again = CountingEmbedder()
    vectors = embed_to_store(again, texts, path, chunk_size=100)
    assert again.encoded == 700  # only what was missing
    assert isinstance(vectors, np.memmap) and vectors.shape == (1000, 64)
    np.testing.assert_allclose(vectors, HashingEmbedder(64).encode(texts), atol=1e-6)
    assert store_path(tmp_path, "hashing-64", texts[:-1] + ["changed"]) != path  # other texts, other file

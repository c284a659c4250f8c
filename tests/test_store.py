"""The memory-mapped document store and k-means fitted on a sample."""

from __future__ import annotations

import json

import numpy as np

from equal.clustering import KMeansClusterer, cluster_moments
from equal.embedding import HashingEmbedder
from equal.embedding.store import embed_to_store, store_path


class CountingEmbedder(HashingEmbedder):
    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__(64)
        self.encoded = 0
        self.fail_after = fail_after

    def encode(self, texts):
        if self.fail_after is not None and self.encoded >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.encoded += len(texts)
        return super().encode(texts)


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


def test_kmeans_fit_on_a_sample_assigns_every_vector(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)).astype(np.float32) * 10
    truth = rng.integers(0, 4, 20_000)
    x = centres[truth] + rng.normal(size=(20_000, 16)).astype(np.float32)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    mm.flush()
    x_map = np.load(tmp_path / "x.npy", mmap_mode="r")
    km = KMeansClusterer(4, max_train_points=2_000, assign_batch=3_000, random_state=1, n_init=3).fit(x_map)
    assert km.labels_.shape == (20_000,)
    # batched assignment is the nearest centroid of every vector
    nearest = ((x[:, None, :] - km.centroids_[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == km.labels_).mean() > 0.999
    # the fit on 10% of the vectors recovers the true clusters
    pure = [np.bincount(km.labels_[truth == c]).max() / (truth == c).sum() for c in range(4)]
    assert min(pure) > 0.99
    mu, sigma = cluster_moments(x_map, km.labels_, 4, chunk_size=4_096)
    for c in range(4):
        np.testing.assert_allclose(mu[c], x[km.labels_ == c].mean(0), atol=1e-4)
        np.testing.assert_allclose(sigma[c], x[km.labels_ == c].std(0), atol=1e-3)

import numpy as np
import pytest

from equal.clustering import KMeansClusterer, cluster_moments, default_n_clusters, neighbour_lists, w2_diag_distances
from equal.errors import ConfigError


def _blobs(seed=0, k=4, per=50, d=8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 5
    x = np.concatenate([c + rng.normal(size=(per, d)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(k), per)


def test_kmeans_recovers_blobs_and_is_seeded():
    x, truth = _blobs()
    a = KMeansClusterer(4, n_init=5, random_state=7).fit(x)
    b = KMeansClusterer(4, n_init=5, random_state=7).fit(x)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    for c in range(4):  # each true blob lands in exactly one cluster
        assert len(set(a.labels_[truth == c])) == 1
    np.testing.assert_array_equal(a.predict(x), a.labels_)


def test_kmeans_refuses_more_clusters_than_documents():
    with pytest.raises(ConfigError, match="fewer than clustering.k"):
        KMeansClusterer(10).fit(np.zeros((5, 3), dtype=np.float32))


def test_default_k():
    assert default_n_clusters(600) == 17
    assert default_n_clusters(3) == 2
    assert default_n_clusters(10_000_000) == 1000


def test_w2_matches_the_formula():
    x, labels = _blobs(k=3)
    mu, sigma = cluster_moments(x, labels, 3)
    dist = w2_diag_distances(mu, sigma)
    i, j = 0, 2
    expected = ((mu[i] - mu[j]) ** 2).sum() + ((sigma[i] - sigma[j]) ** 2).sum()
    assert dist[i, j] == pytest.approx(expected, rel=1e-9)
    assert np.allclose(dist, dist.T) and np.all(np.diag(dist) == 0)
    np.testing.assert_allclose(sigma[0], x[labels == 0].std(0), rtol=1e-6)


def test_neighbours_threshold_and_quantile():
    dist = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0]], dtype=float)
    by_threshold = neighbour_lists(dist, threshold=2.0)
    assert [list(n) for n in by_threshold] == [[0, 1], [0, 1], [2]]
    none = neighbour_lists(dist, quantile=0.0)
    assert [list(n) for n in none] == [[0], [1], [2]]  # a cluster is always its own neighbour
    with pytest.raises(ConfigError):
        neighbour_lists(dist, threshold=1.0, quantile=0.5)


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

"""k-means clusters of document embeddings and the neighbour graph between them."""

from equal.clustering.kmeans import KMeansClusterer, default_n_clusters
from equal.clustering.neighbours import cluster_moments, neighbour_lists, w2_diag_distances

__all__ = [
    "KMeansClusterer",
    "cluster_moments",
    "default_n_clusters",
    "neighbour_lists",
    "w2_diag_distances",
]

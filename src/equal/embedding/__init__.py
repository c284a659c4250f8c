"""Sentence embeddings of documents and QA pairs, with an on-disk cache."""

from equal.embedding.base import Embedder, normalize
from equal.embedding.cache import EmbeddingCache, embed_cached
from equal.embedding.hashing import HashingEmbedder
from equal.embedding.sentence import DEFAULT_MODEL, SentenceTransformerEmbedder

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "EmbeddingCache",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "embed_cached",
    "normalize",
]

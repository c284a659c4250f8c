"""Reading corpora and reference sets into typed records."""

from equal.corpus.passages import split_passages
from equal.corpus.readers import read_documents, read_records
from equal.corpus.reference import read_reference

__all__ = ["read_documents", "read_records", "read_reference", "split_passages"]

"""Embedding throughput: equal's embed stage against plain ``SentenceTransformer.encode``, side by side.

Both embed the same real passages (Wikipedia summaries and Python
documentation, mixed lengths) with the packaged all-MiniLM-L6-v2 on the same
machine, alternating which goes first, several times. The embed stage is
what ``equal run`` does for the corpus: the resumable memory-mapped store,
fed in chunks of 4,096 texts that sentence-transformers sorts by length.

    python benchmarks/embed_throughput.py --texts 4000 --repeats 3

The ratio is plain time / equal time: above 1 means equal is faster.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def passages(n: int, seed: int = 0) -> list[str]:
    from equal.samples.python_docs import python_doc_passages, wikipedia_summaries

    texts = [r["text"] for r in wikipedia_summaries() + python_doc_passages()]
    rng = np.random.default_rng(seed)
    return [texts[i] for i in rng.permutation(len(texts))[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from equal.embedding import SentenceTransformerEmbedder
    from equal.embedding.store import embed_to_store, store_path

    texts = passages(args.texts)
    ours = SentenceTransformerEmbedder(batch_size=args.batch_size, device="cpu")
    plain = SentenceTransformer(ours.path, device="cpu")
    plain.max_seq_length = ours.max_length  # the same truncation as equal's default (256 tokens)
    ours.encode(texts[:64])  # load and warm both before timing
    plain.encode(texts[:64], batch_size=args.batch_size)

    def run_plain() -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        vectors = plain.encode(texts, batch_size=args.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        return time.perf_counter() - started, vectors

    def run_ours() -> tuple[float, np.ndarray]:
        with tempfile.TemporaryDirectory() as tmp:  # a fresh store each time: nothing resumed
            started = time.perf_counter()
            vectors = embed_to_store(ours, texts, store_path(Path(tmp), ours.name, texts))
            elapsed = time.perf_counter() - started
            return elapsed, np.array(vectors)

    plain_times, our_times = [], []
    for repeat in range(args.repeats):
        order = (run_plain, run_ours) if repeat % 2 == 0 else (run_ours, run_plain)
        for fn in order:
            elapsed, vectors = fn()
            (plain_times if fn is run_plain else our_times).append(elapsed)
            if fn is run_plain:
                reference = vectors
            else:
                mine = vectors
        assert np.allclose(reference, mine, atol=1e-4), "the two paths disagree"
    p, o = statistics.median(plain_times), statistics.median(our_times)
    chars = sum(map(len, texts))
    print(f"texts: {len(texts):,} ({chars / len(texts):.0f} characters on average), batch size {args.batch_size}, "
          f"{args.repeats} repeats, CPU threads {os.cpu_count()}")
    print("| path | median seconds | texts / s |")
    print("|---|---|---|")
    print(f"| SentenceTransformer.encode | {p:.2f} | {len(texts) / p:.0f} |")
    print(f"| equal embed stage (memory-mapped store) | {o:.2f} | {len(texts) / o:.0f} |")
    print(f"ratio (plain time / equal time): {p / o:.3f}")


if __name__ == "__main__":
    main()

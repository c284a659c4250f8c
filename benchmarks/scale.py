"""How clustering, the neighbour graph and the bandit scale: 10k, 100k and 1M documents on one machine.

For each size, one process writes clustered synthetic 384-d unit vectors to
a ``.npy`` file, and a fresh process (so peak memory is that size's own)
memory-maps it and times, with the code the run uses:

- k-means: ``k = sqrt(n/2)`` clipped to [2, 1000], fitted on at most
  ``clustering.max_train_points`` (100k) vectors, every vector assigned in batches;
- neighbours: per-cluster moments (chunked) and the O(k^2 d) W2 distance matrix;
- up to 100 bandit rounds at the released shape (50 clusters a round, 10
  documents a pull), played by the run's own ``equal.run.play_rounds``: UCB
  selection, an exact OT reward of each pull's 20 simulated pair embeddings
  against a 100-example reference set, neighbour sharing; extraction is
  simulated (no LLM), so the time is the bandit's own.

``--real`` runs the same stages on MiniLM embeddings of every real passage
we ship (Wikipedia summaries and Python documentation, about 11k).

Memory is reported two ways: peak RSS, which counts the pages of the memory
map that were read (the kernel can drop them at any time), and peak
anonymous memory (``RssAnon``, sampled every 20 ms), what the process itself
allocated: that is the number that must not grow with the corpus.

    python benchmarks/scale.py                       # 10k, 100k, 1M
    python benchmarks/scale.py --sizes 10000 --real  # the CI-sized version
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

DIM = 384
ROUNDS = 100
CLUSTERS_PER_ROUND, DOCS_PER_PULL = 50, 10


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """Samples this process's anonymous resident memory (heap, not file pages) in a thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(interval,), daemon=True)
        self._thread.start()

    @staticmethod
    def now_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _watch(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now_mb())
            time.sleep(interval)

    def take(self) -> float:
        """The peak since the last take, and start again from now."""
        peak, self.peak = max(self.peak, self.now_mb()), self.now_mb()
        return peak


def synthetic(n: int, path: Path, seed: int = 0, topics: int = 2000) -> None:
    """Unit vectors around ``topics`` random centres, written chunk by chunk to a memory map."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, DIM)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, DIM))
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        x = centres[rng.integers(0, topics, size)] + 0.6 * rng.normal(size=(size, DIM)).astype(np.float32)
        out[start:start + size] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()


def real_embeddings(cache: Path) -> None:
    """MiniLM vectors of every real passage the sample builder can read, saved once in ``cache``."""
    path = cache / "real-minilm.npy"
    if not path.exists():
        from equal.embedding import SentenceTransformerEmbedder
        from equal.samples.python_docs import python_doc_passages, wikipedia_summaries

        texts = [r["text"] for r in wikipedia_summaries() + python_doc_passages()]
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, SentenceTransformerEmbedder().encode(texts))


def run_stages(x: np.ndarray, seed: int = 0) -> dict[str, float]:
    from equal.bandit import ClusterArms, RoundShape, build_policy
    from equal.clustering import (
        KMeansClusterer,
        cluster_moments,
        default_n_clusters,
        neighbour_lists,
        w2_diag_distances,
    )
    from equal.embedding import normalize
    from equal.records import Extraction, Generation, QAPair
    from equal.reward import ot_distance, reward_from_distance
    from equal.run import PullScore, play_rounds
    from equal.run.budget import Budget

    n = len(x)
    k = default_n_clusters(n)
    anon = AnonPeak()
    out: dict[str, float] = {"n": n, "k": k, "anon_start_mb": anon.take()}
    started = time.perf_counter()
    km = KMeansClusterer(k, n_iter=50, random_state=seed, max_train_points=100_000).fit(x)
    out["kmeans_s"] = time.perf_counter() - started
    out["anon_kmeans_mb"] = anon.take()

    started = time.perf_counter()
    mu, sigma = cluster_moments(x, km.labels_, k)
    neighbours = neighbour_lists(w2_diag_distances(mu, sigma), quantile=0.05)
    out["neighbours_s"] = time.perf_counter() - started
    out["anon_neighbours_mb"] = anon.take()

    rng = np.random.default_rng(seed)
    target = km.centroids_[rng.integers(0, k)]
    reference = normalize(target + 0.05 * rng.normal(size=(100, x.shape[1])).astype(np.float32))

    def extract(documents: list[int]) -> list[Extraction]:  # two simulated pairs per document, no LLM
        return [Extraction(str(i), [QAPair("q", "a", str(i))] * 2, Generation("")) for i in documents]

    def reward(pairs: list[QAPair]) -> PullScore:  # the pairs' vectors: their documents' plus noise
        rows = np.sort([int(p.document_id) for p in pairs])
        vectors = normalize(np.asarray(x[rows]) + 0.05 * rng.normal(size=(len(rows), x.shape[1])))
        distance = ot_distance(vectors, reference).value
        return PullScore(distance, reward_from_distance(distance, 0.3))

    started = time.perf_counter()
    order = np.argsort(km.labels_, kind="stable")
    members = [rng.permutation(idx) for idx in np.split(order, np.cumsum(np.bincount(km.labels_, minlength=k))[:-1])]
    arms = ClusterArms(members, neighbours)
    # the run's own rounds, for at most ROUNDS full rounds of documents
    budget = Budget(max_documents=ROUNDS * CLUSTERS_PER_ROUND * DOCS_PER_PULL)
    shape = RoundShape(CLUSTERS_PER_ROUND, DOCS_PER_PULL)
    pulls, _ = play_rounds(arms, build_policy("ucb", 0.001), budget, shape=shape, extract=extract, reward=reward,
                           rng=rng)
    out["bandit_100_rounds_s"] = time.perf_counter() - started
    out["rounds"] = len({p.round for p in pulls})
    out["ot_solves"] = len(pulls)
    out["anon_bandit_mb"] = anon.take()
    out["rss_peak_mb"] = peak_rss_mb()
    return out


def one(path: Path, real: bool) -> dict[str, float]:
    """The stages on the vectors in ``path``, memory-mapped."""
    result = run_stages(np.load(path, mmap_mode="r"))
    result["source"] = "real MiniLM" if real else "synthetic"
    return result


def growth(rows: list[dict], key: str) -> str:
    """The exponent b of cost ~ n^b between the smallest and the largest synthetic size."""
    synth = [r for r in rows if r["source"] == "synthetic"]
    if len(synth) < 2:
        return "-"
    a, b = synth[0], synth[-1]
    return f"n^{math.log(b[key] / a[key]) / math.log(b['n'] / a['n']):.2f}"


def table(rows: list[dict]) -> str:
    lines = ["| vectors | source | k | k-means (s) | neighbours (s) | 100 bandit rounds (s) | OT solves | "
             "peak anon. memory: k-means / neighbours / bandit (MB) | peak RSS incl. mapped pages (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['source']} | {r['k']} | {r['kmeans_s']:.1f} | {r['neighbours_s']:.2f} | "
                     f"{r['bandit_100_rounds_s']:.2f} | {r['ot_solves']} | {r['anon_kmeans_mb']:.0f} / "
                     f"{r['anon_neighbours_mb']:.0f} / {r['anon_bandit_mb']:.0f} | {r['rss_peak_mb']:.0f} |")
    lines.append(f"| growth | | | {growth(rows, 'kmeans_s')} | {growth(rows, 'neighbours_s')} | "
                 f"{growth(rows, 'bandit_100_rounds_s')} | | {growth(rows, 'anon_kmeans_mb')} (k-means) | "
                 f"{growth(rows, 'rss_peak_mb')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--real", action="store_true", help="also run on real MiniLM embeddings (~11k passages)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "equal" / "bench")
    parser.add_argument("--make", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--one-real", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()
    if args.make is not None:
        synthetic(args.make, args.one)
        return
    if args.one is not None:
        print(json.dumps(one(args.one, args.one_real)))
        return
    rows = []

    def stages(path: Path, *flags: str) -> None:  # a fresh process per size: its peak memory is its own
        done = subprocess.run([sys.executable, __file__, "--one", str(path), *flags], capture_output=True,
                              text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"synthetic-{n}.npy"
            started = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--make", str(n), "--one", str(path)], check=True)
            print(f"{n:,} vectors written in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            stages(path)
            path.unlink()
    if args.real:
        real_embeddings(args.cache)
        stages(args.cache / "real-minilm.npy", "--one-real")
    text = table(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

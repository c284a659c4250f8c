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

Each synthetic size also gets passages of text (about 2 KB each, drawn from
a seeded word list, written as JSONL shards of 100k lines): the measuring
process reads the shards with the run's reader into the passage store
(``equal.corpus.store``), hashes every text as the embed stage names its
store, and the bandit's simulated extraction reads each chosen passage's
text from the store and replays pairs cut from it. ``--no-passages`` skips
this; ``--in-memory`` also measures the old way, every passage read into a
list of ``Document`` (for the before/after figures).

Memory is reported two ways: peak RSS, which counts the pages of the memory
map that were read (the kernel can drop them at any time), and peak
anonymous memory (``RssAnon``, sampled every 20 ms), what the process itself
allocated: that is the number that must not grow with the corpus.

    python benchmarks/scale.py                       # 10k, 100k, 1M
    python benchmarks/scale.py --sizes 10000 --real  # the CI-sized version
    python benchmarks/scale.py --sizes 1000000 --in-memory --work /big/disk  # passages: store vs list
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from equal.stats import Stats

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


SHARD_LINES = 100_000
PASSAGE_CHARS = 2000


def synthetic_passages(n: int, folder: Path, seed: int = 0) -> None:
    """``n`` JSONL lines ``{"id", "text", "source"}`` of about 2 KB of seeded words, in shards of 100k lines.

    The texts are windows of one long seeded text, cut at word boundaries, so
    writing ten million takes minutes, not hours, and every run writes the same.
    """
    rng = np.random.default_rng(seed)
    vocabulary = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze")
                  for b in ("", "n", "ra", "tel", "mos", "ki", "dun", "vel", "sa", "po", "rin", "ta")]
    block = " ".join(rng.choice(vocabulary, size=2**20)).encode()
    folder.mkdir(parents=True, exist_ok=True)
    starts = rng.integers(0, len(block) - 2 * PASSAGE_CHARS, size=n)
    for shard, first in enumerate(range(0, n, SHARD_LINES)):
        lines = []
        for i in range(first, min(n, first + SHARD_LINES)):
            start = block.index(b" ", int(starts[i])) + 1
            text = block[start:block.rindex(b" ", start, start + PASSAGE_CHARS)].decode()
            lines.append(json.dumps({"id": f"doc-{i}", "text": f"Passage {i}. {text}", "source": f"s{i % 7}"}))
        (folder / f"part-{shard:05d}.jsonl").write_text("\n".join(lines) + "\n")


def read_into_store(shards: Path, cache: Path, anon: AnonPeak, out: dict[str, float]) -> Any:
    """The run's reading of the shards into the passage store, timed, then every text hashed as the embed stage does."""
    from equal.corpus import read_documents
    from equal.corpus.store import open_or_build
    from equal.embedding.store import fingerprint

    started = time.perf_counter()
    store = open_or_build(cache / "passages.arrow",
                          lambda stats: read_documents(shards, id_field="id", keep_fields=("source",), stats=stats),
                          Stats())
    out["read_store_s"] = time.perf_counter() - started
    out["anon_read_store_mb"] = anon.take()
    out["store_gb"] = store.path.stat().st_size / 1e9
    started = time.perf_counter()
    fingerprint("bench", store.texts)
    out["hash_texts_s"] = time.perf_counter() - started
    out["anon_hash_texts_mb"] = anon.take()
    return store


def read_into_list(shards: Path, anon: AnonPeak, out: dict[str, float]) -> list[Any]:
    """The old way, for comparison: every passage read into a list of ``Document``."""
    from equal.corpus import read_documents

    started = time.perf_counter()
    documents = list(read_documents(shards, id_field="id", keep_fields=("source",)))
    out["read_list_s"] = time.perf_counter() - started
    out["anon_read_list_mb"] = anon.take()
    return documents


def real_embeddings(cache: Path) -> None:
    """MiniLM vectors of every real passage the sample builder can read, saved once in ``cache``."""
    path = cache / "real-minilm.npy"
    if not path.exists():
        from equal.embedding import SentenceTransformerEmbedder
        from equal.samples.python_docs import python_doc_passages, wikipedia_summaries

        texts = [r["text"] for r in wikipedia_summaries() + python_doc_passages()]
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, SentenceTransformerEmbedder().encode(texts))


def run_stages(x: np.ndarray, seed: int = 0, shards: Path | None = None, cache: Path | None = None,
               in_memory: bool = False) -> dict[str, float]:
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
    documents = None
    if shards is not None and cache is not None:
        documents = read_into_list(shards, anon, out) if in_memory else read_into_store(shards, cache, anon, out)
        out["passages"] = len(documents)
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

    def extract(chosen: list[int]) -> list[Extraction]:  # two simulated pairs per document, no LLM
        if documents is None:
            return [Extraction(str(i), [QAPair("q", "a", str(i))] * 2, Generation("")) for i in chosen]
        out = []
        for i in chosen:  # replayed answers: pairs cut from the passage's text, read from the store
            words = documents[int(i)].text.split()
            pairs = [QAPair(" ".join(words[:8]) + "?", " ".join(words[8:40]), str(i)),
                     QAPair(" ".join(words[40:48]) + "?", " ".join(words[48:80]), str(i))]
            out.append(Extraction(str(i), pairs, Generation("")))
        return out

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


def one(path: Path, real: bool, shards: Path | None = None, in_memory: bool = False) -> dict[str, float]:
    """The stages on the vectors in ``path``, memory-mapped (after reading the passages in ``shards``)."""
    result = run_stages(np.load(path, mmap_mode="r"), shards=shards, cache=path.parent, in_memory=in_memory)
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


def passages_table(rows: list[dict]) -> str:
    lines = ["| passages | kept as | write shards (s) | read + store (s) | hash texts (s) | k-means (s) | "
             "neighbours (s) | 100 rounds, replaying the passages' text (s) | store (GB) | "
             "peak anon. memory: read / hash / k-means / neighbours / bandit (MB) | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "passages" not in r:
            continue
        listed = "read_list_s" in r
        lines.append(
            f"| {r['passages']:,} | {'list' if listed else 'store'} | {r.get('write_shards_s', 0):.0f} | "
            f"{r['read_list_s' if listed else 'read_store_s']:.1f} | "
            f"{'-' if listed else format(r['hash_texts_s'], '.1f')} | {r['kmeans_s']:.1f} | "
            f"{r['neighbours_s']:.2f} | {r['bandit_100_rounds_s']:.2f} | "
            f"{'-' if listed else format(r['store_gb'], '.2f')} | "
            f"{r['anon_read_list_mb' if listed else 'anon_read_store_mb']:.0f} / "
            f"{'-' if listed else format(r['anon_hash_texts_mb'], '.0f')} / {r['anon_kmeans_mb']:.0f} / "
            f"{r['anon_neighbours_mb']:.0f} / {r['anon_bandit_mb']:.0f} | {r['rss_peak_mb']:.0f} |")
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
    parser.add_argument("--no-passages", action="store_true", help="vectors only: no passage text, no store")
    parser.add_argument("--in-memory", action="store_true",
                        help="also measure each size with its passages read into a list (the way before the store)")
    parser.add_argument("--work", type=Path, help="where the vectors, shards and store go (default: a temporary "
                        "folder; 10M passages need about 60 GB)")
    parser.add_argument("--make-text", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make is not None:
        synthetic(args.make, args.one)
        return
    if args.make_text is not None:
        synthetic_passages(args.make_text, args.shards)
        return
    if args.one is not None:
        print(json.dumps(one(args.one, args.one_real, args.shards, args.in_memory)))
        return
    rows = []

    def stages(path: Path, *flags: str) -> dict:  # a fresh process per size: its peak memory is its own
        done = subprocess.run([sys.executable, __file__, "--one", str(path), *flags], capture_output=True,
                              text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
        return rows[-1]

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"synthetic-{n}.npy"
            started = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--make", str(n), "--one", str(path)], check=True)
            print(f"{n:,} vectors written in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            if args.no_passages:
                stages(path)
            else:
                shards = Path(tmp) / f"shards-{n}"
                started = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--make-text", str(n), "--shards", str(shards)], check=True)
                written = time.perf_counter() - started
                print(f"{n:,} passages written in {written:.1f}s", file=sys.stderr)
                stages(path, "--shards", str(shards))["write_shards_s"] = written
                (Path(tmp) / "passages.arrow").unlink()
                (Path(tmp) / "passages.json").unlink()
                if args.in_memory:
                    stages(path, "--shards", str(shards), "--in-memory")["write_shards_s"] = written
                shutil.rmtree(shards)
            path.unlink()
    if args.real:
        real_embeddings(args.cache)
        stages(args.cache / "real-minilm.npy", "--one-real")
    text = table([r for r in rows if "read_list_s" not in r])
    if any("passages" in r for r in rows):
        text += "\n\n" + passages_table(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

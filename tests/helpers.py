"""What more than one test file builds: synthetic corpora and benchmarks, test doubles, and the repository's paths.

A plain module, imported as ``tests.helpers``; the fixtures built on it are in ``conftest.py``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from equal.embedding import HashingEmbedder

TESTS = Path(__file__).parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
BENCHMARKS = ROOT / "benchmarks"

# Two vocabularies: documents about Python programming (relevant to the reference
# set) and documents about unrelated topics. The hashing embedder separates them.
_PYTHON_WORDS = ("python function list dictionary loop class module import exception string integer "
                 "variable return yield generator decorator iterator tuple lambda syntax interpreter").split()
_OTHER_WORDS = ("river mountain empire war king painting music opera football planet volcano forest "
                "ocean city village harvest bread cathedral poem novel ancient").split()


def _text(rng: random.Random, words: list[str], n: int = 30) -> str:
    return " ".join(rng.choice(words) for _ in range(n)) + "."


def make_corpus(path: Path, n_relevant: int = 40, n_other: int = 160, seed: int = 0) -> Path:
    """A JSONL corpus with ``source`` labels and stored pairs for the replay extractor."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_relevant + n_other):
        relevant = i < n_relevant
        words = _PYTHON_WORDS if relevant else _OTHER_WORDS
        text = _text(rng, words)
        pairs = [{"question": f"Explain {_text(rng, words, 6)}", "answer": _text(rng, words, 12)}]
        rows.append({"id": f"{'py' if relevant else 'ot'}-{i}", "text": text,
                     "source": "python" if relevant else "other", "qa_pairs": pairs})
    rng.shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_reference(path: Path, n: int = 20, seed: int = 1) -> Path:
    rng = random.Random(seed)
    rows = [{"question": f"How do I {_text(rng, _PYTHON_WORDS, 6)}", "answer": _text(rng, _PYTHON_WORDS, 12)}
            for _ in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- a small synthetic benchmark for `equal bench` ------------------------------------------------------------------

TOPICS = {
    "python_docs": "python function list dictionary loop class module import exception string integer variable "
                   "return yield generator decorator iterator tuple lambda syntax interpreter".split(),
    "sympy_docs": "integral derivative matrix polynomial equation symbol limit series solve simplify expand "
                  "factor root prime theorem proof inequality sequence sum product".split(),
    "wikipedia": "river mountain empire war king painting music opera football planet volcano forest ocean city "
                 "village harvest bread cathedral poem novel ancient".split(),
}


def make_bench(root: Path, seed: int = 0) -> Path:
    """A manifest, a 300-document corpus with stored pairs, and two reference sets with held-out parts."""
    rng = random.Random(seed)
    rows = []
    for source, count in (("python_docs", 60), ("sympy_docs", 45), ("wikipedia", 195)):
        for i in range(count):
            words = TOPICS[source]
            pairs = [{"question": f"What about {_text(rng, words, 6)}", "answer": _text(rng, words, 14)}
                     for _ in range(rng.randint(0, 3))]
            rows.append({"id": f"{source}-{i}", "text": _text(rng, words, 120), "source": source,
                         "qa_pairs": pairs, "tokens": 300 + 40 * len(pairs)})
    rng.shuffle(rows)
    root.mkdir(parents=True, exist_ok=True)
    (root / "extracted.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = {"corpus": "extracted.jsonl", "passages": len(rows), "reference_sets": {}}
    for name, source in (("python_faq", "python_docs"), ("champ", "sympy_docs")):
        examples = [{"question": f"How do I {_text(rng, TOPICS[source], 6)}", "answer": _text(rng, TOPICS[source], 14)}
                    for _ in range(40)]
        for part, chunk in (("reward", examples[:25]), ("heldout", examples[25:])):
            (root / name).mkdir(exist_ok=True)
            (root / name / f"{part}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in chunk))
        manifest["reference_sets"][name] = {"reward": f"{name}/reward.jsonl", "heldout": f"{name}/heldout.jsonl",
                                            "relevant_sources": [source]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


# -- test doubles -------------------------------------------------------------------------------------------------


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


class FakeArms:
    """Clusters of consecutive document indices; records every shared reward."""

    def __init__(self, sizes: list[int]) -> None:
        starts = np.cumsum([0, *sizes])
        self.members = [list(range(int(a), int(b))) for a, b in zip(starts[:-1], starts[1:])]
        self.count = np.zeros(len(sizes))
        self.total = 0.0
        self.sums = np.zeros(len(sizes))
        self.shared: list[tuple[int, float]] = []

    def available(self) -> np.ndarray:
        return np.array([bool(m) for m in self.members])

    def take(self, cluster: int, m: int) -> list[int]:
        taken, self.members[cluster] = self.members[cluster][:m], self.members[cluster][m:]
        return taken

    def mean_reward(self) -> np.ndarray:
        return np.divide(self.sums, self.count, out=np.zeros_like(self.sums), where=self.count > 0)

    def share(self, cluster: int, reward: float, *, pulled: bool = True) -> None:
        self.shared.append((cluster, reward))
        self.sums[cluster] += reward
        self.count[cluster] += 1
        self.total += 1


class ScriptedPolicy:
    """Picks the clusters it is told, round by round, and notes what it saw when it picked."""

    def __init__(self, script: list[list[int]]) -> None:
        self.script = script
        self.seen: list[int] = []  # rewards shared before each selection

    def select(self, arms, n, rng):
        self.seen.append(len(arms.shared))
        chosen = self.script[min(len(self.seen) - 1, len(self.script) - 1)]
        return [c for c in chosen if arms.available()[c]][:n]

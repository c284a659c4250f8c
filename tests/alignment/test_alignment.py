import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equal.alignment import build_examples, mine_hard_negatives
from equal.embedding import normalize
from tests.helpers import FIXTURES


def _setup(seed, n_docs, pairs_per_doc, d=16):
    rng = np.random.default_rng(seed)
    docs = normalize(rng.normal(size=(n_docs, d)))
    owner = np.repeat(np.arange(n_docs), pairs_per_doc)
    pairs = normalize(docs[owner] + 0.3 * rng.normal(size=(len(owner), d)))
    return docs, pairs, owner


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 1000), st.integers(2, 30), st.integers(1, 4), st.integers(1, 9))
def test_mined_negatives_never_include_the_documents_own_pairs(seed, n_docs, per_doc, n_neg):
    docs, pairs, owner = _setup(seed, n_docs, per_doc)
    negatives = mine_hard_negatives(docs, pairs, owner, n_negatives=n_neg, random_state=seed)
    for i, neg in enumerate(negatives):
        assert not np.any(owner[neg] == i)
        in_window = max(0, min((n_docs - 1) * per_doc, 200) - 1)  # ranks 2..200 of the other pairs
        assert len(set(neg.tolist())) == len(neg) == min(n_neg, in_window)


def test_negatives_come_from_the_rank_window():
    docs, pairs, owner = _setup(0, 40, 2)
    negatives = mine_hard_negatives(docs, pairs, owner, n_negatives=5, rank_window=(2, 6), random_state=0)
    for i, neg in enumerate(negatives):
        order = np.argsort(-(pairs @ docs[i]), kind="stable")
        order = order[owner[order] != i]
        assert set(neg.tolist()) == set(order[1:6].tolist())  # ranks 2..6, all five drawn


def test_same_seed_same_triples_and_other_seed_differs():
    docs, pairs, owner = _setup(1, 30, 3)
    texts = [f"pair {j}" for j in range(len(pairs))]
    ids = [f"d{i}" for i in range(30)]
    doc_texts = [f"document {i}" for i in range(30)]

    def make(seed):
        examples = build_examples(ids, doc_texts, texts, owner, docs, pairs, random_state=seed)
        return [(e.anchor, e.positive, tuple(e.negatives)) for e in examples]

    assert make(3) == make(3)
    assert make(3) != make(4)
    first = build_examples(ids, doc_texts, texts, owner, docs, pairs, random_state=3)
    assert len(first) == len(pairs)  # one example per (document, own pair)
    for e in first:
        i = int(e.document_id[1:])
        assert e.anchor == doc_texts[i] and texts.index(e.positive) // 3 == i
        assert len(e.negatives) == 7 and all(texts.index(n) // 3 != i for n in e.negatives)


@pytest.mark.slow
def test_run_with_alignment_saves_the_model_and_never_retrains_it(tmp_path):
    """Real MiniLM, replayed pairs: alignment trains once, is saved in the run, and a rerun reuses it."""
    import json

    from equal import load_config, run
    from equal.alignment.trainer import COMPLETE_MARKER
    from equal.testing.fake_server import default_answer

    rows = [json.loads(x) for x in (FIXTURES / "mini_corpus.jsonl").read_text().splitlines()]
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w") as f:
        for r in rows:
            prompt = [{"role": "user", "content": f"<document>{r['text']}</document>"}]
            r["qa_pairs"] = json.loads(default_answer(prompt))["pairs"]
            f.write(json.dumps(r) + "\n")
    cfg = load_config(None, {
        "corpus.path": str(corpus), "corpus.id_field": "id", "corpus.label_field": "source",
        "reference.path": str(FIXTURES / "mini_reference.jsonl"), "extraction.extractor": "replay",
        "clustering.k": 3, "budget.fraction": 1.0, "warmup.fraction_of_budget": 0.5, "warmup.min_documents": 6,
        "alignment.enabled": True, "alignment.epochs": 1, "alignment.batch_size": 4,
        "alignment.hard_negatives": 2, "output.dir": str(tmp_path / "run"),
    })
    first = run(cfg)
    model_dir = first.run_dir / "aligned_model"
    marker = model_dir / COMPLETE_MARKER
    assert marker.exists() and (model_dir / "model.safetensors").exists()
    assert first.counters["alignment_examples"] == 6
    info = json.loads(marker.read_text())
    assert info["negatives_per_example"] == 2 and info["temperature"] == 0.02
    stamp = marker.stat().st_mtime_ns
    second = run(cfg)
    assert second.counters["alignment_reused"] == 1
    assert marker.stat().st_mtime_ns == stamp
    assert second.dataset_path.read_text() == first.dataset_path.read_text()

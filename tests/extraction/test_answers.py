"""The answer post-processor (what Ray's LLM actors run on each answer) and the driver's store of its vectors."""

from __future__ import annotations

import json

import numpy as np

from equal.embedding import EmbeddingCache, HashingEmbedder
from equal.embedding.cache import text_key
from equal.extraction.answers import AnswerPairs, PairVectorStore
from equal.extraction.task import ExtractionTask
from equal.records import Document, Generation
from equal.stats import Stats


def _answer(*pairs: tuple[str, str]) -> Generation:
    return Generation(text=json.dumps([{"question": q, "answer": a} for q, a in pairs]), tokens_in=5, tokens_out=5)


class _Failing(HashingEmbedder):
    def encode(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError("CUDA out of memory")


def test_an_answers_pairs_are_parsed_as_the_extractor_parses_them():
    answer = _answer(("What is a list?", "A sequence."), ("What is a dict?", "A mapping."), ("Third?", "Cut."))
    task = ExtractionTask(max_pairs=2)
    pairs, _ = task.format_output(Document("d", "text"), answer.text)
    assert AnswerPairs(HashingEmbedder, max_pairs=2).texts(answer) == [p.as_text() for p in pairs]
    assert len(pairs) == 2
    assert AnswerPairs(HashingEmbedder, max_pairs=2).texts(Generation(text="", error="timeout")) == []


def test_a_batch_embeds_each_answers_pairs_once_as_they_arrive():
    answers = AnswerPairs(lambda: HashingEmbedder(64), max_pairs=5)
    batch = answers.start(Stats())
    first, second = _answer(("q1?", "a1."), ("q2?", "a2.")), _answer(("q2?", "a2."), ("q3?", "a3."))
    batch.add(0, first)
    batch.add(1, second)
    made = batch.finish()
    assert made is not None and made.embedder == "hashing-64"
    texts = ["Question: q1?\nAnswer: a1.", "Question: q2?\nAnswer: a2.", "Question: q3?\nAnswer: a3."]
    assert made.texts == tuple(texts)  # the repeated pair is embedded once
    # each answer's new pairs are one batch of their own, whatever else arrived
    expected = np.concatenate([HashingEmbedder(64).encode(texts[:2]), HashingEmbedder(64).encode(texts[2:])])
    np.testing.assert_array_equal(made.vectors, expected)


def test_a_failing_embedder_leaves_the_answers_and_is_counted():
    stats = Stats()
    batch = AnswerPairs(_Failing, max_pairs=5).start(stats)
    batch.add(0, _answer(("q?", "a.")))
    assert batch.finish() is None
    assert stats.get("pair_embedding_failures") == 1


def test_the_driver_stores_the_vectors_under_the_rewards_keys_and_keeps_those_it_has(tmp_path):
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    stats = Stats()
    batch = AnswerPairs(lambda: HashingEmbedder(64), max_pairs=5).start(Stats())
    batch.add(0, _answer(("q1?", "a1."), ("q2?", "a2.")))
    made = batch.finish()
    assert made is not None
    kept = np.ones(64, dtype=np.float32) / 8.0
    cache.put_many([text_key("hashing-64", made.texts[0])], kept[None, :])
    PairVectorStore(cache, stats)(made)
    stored = cache.get_many([text_key("hashing-64", t) for t in made.texts])
    np.testing.assert_array_equal(stored[text_key("hashing-64", made.texts[0])], kept)  # already there: kept
    np.testing.assert_array_equal(stored[text_key("hashing-64", made.texts[1])], made.vectors[1])
    assert stats.get("pair_vectors_from_workers") == 2
    cache.close()

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equal.embedding import normalize
from equal.reward import auto_offset, cost_matrix, ot_distance, reward_from_distance


def _cloud(seed, n, d=16):
    return normalize(np.random.default_rng(seed).normal(size=(n, d)))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 25), st.sampled_from(["cosine", "euclidean"]))
def test_a_set_against_itself_costs_zero(seed, n, cost):
    x = _cloud(seed, n)
    assert ot_distance(x, x, cost=cost).value == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 20), st.integers(1, 20), st.sampled_from(["exact", "sinkhorn"]))
def test_plan_marginals_equal_the_weights(seed, n, m, solver):
    x, y = _cloud(seed, n), _cloud(seed + 1, m)
    plan = ot_distance(x, y, solver=solver, reg=0.05).plan
    tol = 1e-6 if solver == "exact" else 1e-3
    np.testing.assert_allclose(plan.sum(1), np.full(n, 1 / n), atol=tol)
    np.testing.assert_allclose(plan.sum(0), np.full(m, 1 / m), atol=tol)


def test_closer_sets_have_smaller_distance_and_sinkhorn_tracks_exact():
    ref = _cloud(0, 30)
    near = normalize(ref[:10] + 0.05 * np.random.default_rng(1).normal(size=(10, 16)))
    far = _cloud(2, 10)
    d_near, d_far = ot_distance(near, ref).value, ot_distance(far, ref).value
    assert d_near < d_far
    assert ot_distance(near, ref, solver="sinkhorn", reg=0.01).value == pytest.approx(d_near, abs=0.05)


def test_ot_penalises_covering_only_part_of_the_reference():
    ref = _cloud(3, 20)
    one_corner = np.repeat(ref[:1], 20, axis=0)
    assert ot_distance(ref, ref).value < ot_distance(one_corner, ref).value


def test_cost_matrices():
    x = np.array([[1.0, 0.0]], dtype=np.float32)
    y = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(cost_matrix(x, y, "cosine"), [[1.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(cost_matrix(x, y, "euclidean"), [[np.sqrt(2), 0.0]], atol=1e-7)


def test_reward_and_auto_offset():
    assert reward_from_distance(0.5, 0.12) == pytest.approx(0.38)
    offset = auto_offset([0.8, 0.9, 1.0])
    rewards = [reward_from_distance(d, offset) for d in (0.8, 0.9, 1.0)]
    assert np.mean(rewards) == pytest.approx(0.0)
    assert auto_offset([]) == 0.12


def _unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_coverage_prefers_a_new_region_of_the_task_to_a_repeated_one():
    """Reference: a large region (axis 0) and a small one (axis 1). Selected so far: the large one only. A
    pull in the small region must gain more than one in the large region, which closeness prefers, and an
    off-task pull must lose."""
    from equal.reward import CoverageGain, ot_distance

    rng = np.random.default_rng(0)
    region0 = _unit(np.c_[np.ones(30), 0.05 * rng.standard_normal((30, 3))])
    region1 = _unit(np.c_[np.zeros(10), np.ones(10), 0.05 * rng.standard_normal((10, 2))])
    reference = np.concatenate([region0, region1])
    coverage = CoverageGain(reference, size=16, seed=0)
    coverage.add(_unit(np.c_[np.ones(16), 0.1 * rng.standard_normal((16, 3))]))  # the selection: region 0
    repeat = _unit(np.c_[np.ones(4), 0.01 * rng.standard_normal((4, 3))])
    new = _unit(np.c_[0.2 * np.ones(4), np.ones(4), 0.3 * rng.standard_normal((4, 2))])
    off = _unit(np.c_[np.zeros((4, 3)), np.ones(4)])
    # by closeness alone the repeated region wins: its pairs are nearer the reference
    assert ot_distance(repeat, reference).value < ot_distance(new, reference).value
    assert coverage.gain(new) > coverage.gain(repeat)
    assert coverage.gain(off) < 0
    assert len(coverage.sample) == 16  # gain() leaves the sample as it was


def test_the_coverage_sample_stays_its_size_and_is_deterministic():
    from equal.reward import CoverageGain

    vectors = _unit(np.random.default_rng(1).standard_normal((100, 8)))
    runs = []
    for _ in range(2):
        coverage = CoverageGain(vectors[:10], size=12, seed=3)
        for start in range(0, 100, 7):
            coverage.add(vectors[start:start + 7])
        runs.append(coverage.sample)
    assert runs[0].shape == (12, 8) and np.array_equal(runs[0], runs[1])
    # a reservoir keeps pairs from the whole run, not only the first ones
    kept = {int(np.argmax(vectors @ v)) for v in runs[0]}
    assert max(kept) >= 50


def test_a_quality_adjusted_reward_ranks_self_contained_pairs_above_pairs_that_point_at_their_passage():
    from equal.quality import ReferenceShape, grade
    from equal.records import QAPair
    from equal.reward import quality_adjusted

    shape = ReferenceShape(median_answer_words=12)
    answer = "Use the reversed function or slicing with a step of minus one, which returns a new list."
    standing = [QAPair("How do I reverse a list in Python?", answer)] * 3
    pointing = [QAPair("What does the passage say about reversing a list?", answer)] * 3

    def reward(pairs, closeness=0.05):  # both pulls equally close to the reference by OT
        kept = [p for p in pairs if grade(p, shape).grade >= 4]
        return quality_adjusted(closeness, len(kept) / len(pairs))

    assert reward(standing) == 0.05 and reward(pointing) < reward(standing)


@pytest.mark.parametrize("kind", ["quality", "coverage"])
def test_a_run_rewards_its_pulls_by_the_kind_asked(replay_config, corpus_path, tmp_path, kind):
    """Each reward kind runs a whole replayed run: the warm-up sets its offset, every pull gets a finite reward,
    and the rewards are not the closeness rewards of the same run (a third of the corpus's stored questions
    point at their passage, which the quality reward holds against them)."""
    import json
    import math

    from equal import run

    rows = [json.loads(line) for line in corpus_path.read_text().splitlines()]
    for i, row in enumerate(rows[::3]):
        row["qa_pairs"][0]["question"] = f"What does the passage say about item {i}?"
    corpus_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    closeness = run(replay_config(**{"output.dir": str(tmp_path / "closeness")}))
    other = run(replay_config(**{"output.dir": str(tmp_path / kind), "reward.kind": kind}))
    rewards = [p.reward for p in other.pulls]
    assert rewards and all(math.isfinite(r) for r in rewards)
    assert len(other.selected_documents) == len(closeness.selected_documents)  # the same budget
    assert rewards != [p.reward for p in closeness.pulls]
    assert other.summary.reward_offset != closeness.summary.reward_offset  # calibrated on its own scores

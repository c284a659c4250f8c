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

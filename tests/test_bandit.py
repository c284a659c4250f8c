import numpy as np
import pytest

from equal.bandit import ClusterArms, UCBPolicy, UniformPolicy, build_policy
from equal.errors import ConfigError


def _arms(k=5, per=200, neighbours=None):
    members = [np.arange(c * per, (c + 1) * per) for c in range(k)]
    return ClusterArms(members, neighbours or [np.array([c]) for c in range(k)])


def _play(policy, arms, means, rounds=150, b=1, m=1, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        chosen = policy.select(arms, b, rng)
        if not chosen:
            break
        for c in chosen:
            arms.take(c, m)
            arms.share(c, means[c] + rng.normal(scale=0.05))
    return arms


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("schedule", ["constant", "decaying"])
def test_ucb_converges_to_the_dominant_arm(schedule, seed):
    means = np.array([-0.1, 0.0, 0.3, -0.05, 0.02])
    arms = _play(UCBPolicy(alpha=0.1, schedule=schedule), _arms(), means, seed=seed)
    assert int(np.argmax(arms.pulls)) == 2
    assert arms.pulls[2] > 0.8 * arms.pulls.sum()


def test_tiny_alpha_exploits_the_first_arm_above_zero():
    """The released alpha = 0.001 makes the offset a threshold: the first cluster found with a
    positive reward is pulled for ever, even when a better one is never tried."""
    means = np.array([-0.1, 0.0, 0.3, -0.05, 0.02])
    arms = _play(UCBPolicy(alpha=0.001), _arms(), means, seed=0)
    first = int(np.argmax(arms.pulls))
    assert means[first] > 0 and arms.pulls[first] == arms.pulls.sum()


def test_uniform_policy_spreads_pulls():
    means = np.array([-0.1, 0.0, 0.3, -0.05, 0.02])
    arms = _play(UniformPolicy(), _arms(), means, rounds=500)
    assert arms.pulls.min() > 60


def test_neighbour_sharing_credits_every_neighbour_in_full():
    arms = _arms(k=3, neighbours=[np.array([0, 1]), np.array([0, 1]), np.array([2])])
    arms.share(0, 0.5)
    np.testing.assert_allclose(arms.reward_sum, [0.5, 0.5, 0.0])
    np.testing.assert_allclose(arms.count, [1, 1, 0])
    assert arms.total == 2 and list(arms.pulls) == [1, 0, 0]
    # the unpulled neighbour now outranks the untouched cluster
    scores = UCBPolicy(alpha=0.001).scores(arms)
    assert scores[1] > scores[2]


def test_exhausted_clusters_leave_the_game():
    arms = _arms(k=2, per=3)
    assert arms.take(0, 10) == [0, 1, 2]
    assert list(arms.available()) == [False, True]
    rng = np.random.default_rng(0)
    assert UCBPolicy().select(arms, 5, rng) == [1]
    arms.take(1, 3)
    assert UCBPolicy().select(arms, 5, rng) == []


def test_round_zero_is_random_then_greedy_top_b():
    arms = _arms(k=6)
    first = UCBPolicy().select(arms, 3, np.random.default_rng(1))
    assert len(set(first)) == 3
    for c, r in enumerate([0.1, 0.5, -0.2, 0.4, 0.0, 0.3]):
        arms.share(c, r)
    assert UCBPolicy().select(arms, 3, np.random.default_rng(1)) == [1, 3, 5]


def test_policy_validation():
    with pytest.raises(ConfigError):
        UCBPolicy(alpha=-1)
    with pytest.raises(ConfigError):
        build_policy("thompson")

import numpy as np
import pytest

from equal.bandit import ClusterArms, ThompsonPolicy, UCBPolicy, UniformPolicy, build_policy
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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thompson_sampling_converges_to_the_dominant_arm(seed):
    means = np.array([-0.1, 0.0, 0.3, -0.05, 0.02])
    arms = _play(ThompsonPolicy(scale=0.1), _arms(), means, seed=seed)
    assert int(np.argmax(arms.pulls)) == 2
    assert arms.pulls[2] > 0.8 * arms.pulls.sum()


def test_thompson_sampling_tries_the_better_arm_that_a_tiny_ucb_alpha_never_does():
    """Where UCB with alpha 0.001 locks onto the first arm above zero (test above), Thompson's draws
    keep a close-to-best arm in play until its count shows which is better."""
    means = np.array([-0.1, 0.0, 0.3, -0.05, 0.02])
    locked = _play(UCBPolicy(alpha=0.001), _arms(), means, seed=0)
    sampled = _play(ThompsonPolicy(scale=0.05), _arms(), means, seed=0)
    assert locked.pulls[2] == 0 and sampled.pulls[2] > 0.5 * sampled.pulls.sum()


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
        build_policy("epsilon-greedy")
    with pytest.raises(ConfigError):
        build_policy("thompson", -0.1)


def test_the_policy_registry_holds_every_policy_the_config_accepts():
    import typing

    from equal.bandit import POLICIES
    from equal.config import BanditConfig

    assert set(POLICIES) == set(typing.get_args(BanditConfig.model_fields["policy"].annotation))
    assert isinstance(build_policy("ucb", 0.2, "decaying"), UCBPolicy)
    assert build_policy("ucb", 0.2, "decaying").schedule == "decaying"
    assert isinstance(build_policy("uniform", 0.2), UniformPolicy)
    assert isinstance(build_policy("thompson", 0.2), ThompsonPolicy) and build_policy("thompson", 0.2).scale == 0.2


def test_similarity_prior_starts_on_task_clusters_above_off_task_ones():
    from equal.bandit import similarity_prior

    arms = _arms(k=3, per=2)
    labels = np.array([0, 0, 1, 1, 2, 2])
    similarity = np.array([0.9, 0.8, 0.1, 0.2, 0.5, 0.5])
    similarity_prior(arms, labels, similarity, warm_rewards=[0.1, -0.1])
    assert arms.mean_reward()[0] > arms.mean_reward()[2] > arms.mean_reward()[1]
    assert list(arms.count) == [1, 1, 1] and list(arms.pulls) == [0, 0, 0]  # not shared, not a pull
    np.testing.assert_allclose(arms.reward_sum.sum(), 0.0, atol=1e-12)  # standardised over the clusters
    flat = _arms(k=2, per=1)
    similarity_prior(flat, np.array([0, 1]), np.array([0.3, 0.3]), [0.1, -0.1])
    assert flat.total == 0  # nothing to tell the clusters apart


def test_warmup_prior_shares_each_clusters_warmup_reward_without_counting_a_pull():
    from equal.bandit import warmup_prior
    from equal.records import QAPair

    arms = _arms(k=3, per=2, neighbours=[np.array([0, 1]), np.array([1]), np.array([2])])
    labels = np.array([0, 0, 1, 1, 2, 2])
    pairs = [[QAPair("q", "a", "0")], [QAPair("q", "a", "1"), QAPair("q", "a", "1")], []]
    seen = []

    def reward(cluster_pairs):
        seen.append(len(cluster_pairs))
        return None if not cluster_pairs else 0.1 * len(cluster_pairs)

    credited = warmup_prior(arms, labels, [0, 1, 4], pairs, reward)
    assert credited == 1 and seen == [3, 0]  # cluster 0's two documents rewarded together; cluster 2 had none
    np.testing.assert_allclose(arms.reward_sum, [0.3, 0.3, 0.0])
    assert list(arms.pulls) == [0, 0, 0]


def test_alpha_auto_and_the_reward_of_an_empty_pull():
    from equal.bandit import empty_pull_reward, resolve_alpha

    assert resolve_alpha(0.3, [1.0, 2.0]) == 0.3
    assert resolve_alpha("auto", [0.0, 0.2]) == pytest.approx(0.1)
    assert resolve_alpha("auto", [0.4]) == resolve_alpha("auto", [0.2, 0.2]) == 0.05
    assert empty_pull_reward([0.2, -0.3, 0.1]) == -0.3 and empty_pull_reward([]) == -1.0


def test_document_orders_inside_a_cluster():
    from equal.bandit import OrderContext, cluster_members

    labels = np.array([0, 1, 0, 0, 1])
    vectors = np.array([[0.0], [5.0], [3.0], [1.0], [4.0]], dtype=np.float32)
    context = OrderContext(vectors, np.array([[0.9], [5.0]], dtype=np.float32),
                           similarity=np.array([0.1, 0.2, 0.9, 0.5, 0.3]))
    rng = np.random.default_rng(0)
    by_reference = cluster_members(labels, 2, [], "reference", context, rng)
    assert [list(m) for m in by_reference] == [[2, 3, 0], [4, 1]]
    by_centroid = cluster_members(labels, 2, [3], "centroid", context, rng)
    assert [list(m) for m in by_centroid] == [[0, 2], [1, 4]]  # the warm-up's document 3 is left out
    shuffled = cluster_members(labels, 2, [], "random", context, np.random.default_rng(1))
    assert [sorted(m) for m in shuffled] == [[0, 2, 3], [1, 4]]
    with pytest.raises(ConfigError, match="document_order"):
        cluster_members(labels, 2, [], "alphabetical", context, rng)

"""The multi-armed bandit over clusters: arm state, policies, round shape, and EQUAL's priors and orders."""

from equal.bandit.arms import Arms, ClusterArms
from equal.bandit.order import DOCUMENT_ORDERS, OrderContext, cluster_members
from equal.bandit.policy import POLICIES, Policy, ThompsonPolicy, UCBPolicy, UniformPolicy, build_policy
from equal.bandit.priors import empty_pull_reward, resolve_alpha, similarity_prior, warmup_prior
from equal.bandit.shape import RoundShape, round_shape

__all__ = [
    "DOCUMENT_ORDERS",
    "POLICIES",
    "Arms",
    "ClusterArms",
    "OrderContext",
    "Policy",
    "RoundShape",
    "ThompsonPolicy",
    "UCBPolicy",
    "UniformPolicy",
    "build_policy",
    "cluster_members",
    "empty_pull_reward",
    "resolve_alpha",
    "round_shape",
    "similarity_prior",
    "warmup_prior",
]

"""The multi-armed bandit over clusters: state, policies, reward sharing."""

from equal.bandit.arms import ClusterArms
from equal.bandit.policy import POLICIES, Policy, UCBPolicy, UniformPolicy, build_policy

__all__ = ["POLICIES", "ClusterArms", "Policy", "UCBPolicy", "UniformPolicy", "build_policy"]

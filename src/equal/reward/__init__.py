"""Optimal-transport distance to the reference set, and the bandit reward built on it."""

from equal.reward.ot import OTResult, cost_matrix, ot_distance
from equal.reward.reward import auto_offset, calibrate_offset, reward_from_distance

__all__ = ["OTResult", "auto_offset", "calibrate_offset", "cost_matrix", "ot_distance", "reward_from_distance"]

"""Optimal-transport distance to the reference set, and the bandit rewards built on it."""

from equal.reward.coverage import CoverageGain
from equal.reward.ot import OTResult, cost_matrix, ot_distance
from equal.reward.reward import auto_offset, calibrate_offset, quality_adjusted, reward_from_distance

__all__ = ["CoverageGain", "OTResult", "auto_offset", "calibrate_offset", "cost_matrix", "ot_distance",
           "quality_adjusted", "reward_from_distance"]

"""A run of EQUAL, phase by phase (:mod:`equal.run.pipeline`), and the run directory it writes."""

from equal.run.pipeline import RunResult, run
from equal.run.rounds import PullScore, play_rounds

__all__ = ["PullScore", "RunResult", "play_rounds", "run"]

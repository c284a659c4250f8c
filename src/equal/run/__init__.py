"""The run loop and what it needs: budget accounting and builders."""

from equal.run.pipeline import EqualRun, RunResult, run

__all__ = ["EqualRun", "RunResult", "run"]

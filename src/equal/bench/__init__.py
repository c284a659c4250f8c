"""`equal bench`: selection strategies compared at equal LLM budget on identical (replayed) extractions."""

from equal.bench.runner import BenchData, run_bench
from equal.bench.strategies import STRATEGIES

__all__ = ["STRATEGIES", "BenchData", "run_bench"]

"""`equal bench`: selection strategies compared at equal LLM budget on identical (replayed) extractions."""

from equal.bench.runner import BenchData, run_bench
from equal.bench.strategies import ABLATIONS, DEFAULT, STRATEGIES

__all__ = ["ABLATIONS", "DEFAULT", "STRATEGIES", "BenchData", "run_bench"]

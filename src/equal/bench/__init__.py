"""`equal bench`: selection strategies compared at equal LLM budget on identical (replayed) extractions.

- ``strategies``: the one table of strategies (the CLI and ``benchmarks/`` scripts read it);
- ``runner``: running each strategy and measuring what it picked (``results.jsonl``);
- ``tables`` and ``plots``: ``results.md`` and the PNGs, from the measured results.
"""

from equal.bench.runner import BenchData, run_bench
from equal.bench.strategies import ABLATIONS, DEFAULT, STRATEGIES, pipeline_overrides
from equal.bench.tables import Bar, write_results

__all__ = ["ABLATIONS", "DEFAULT", "STRATEGIES", "Bar", "BenchData", "pipeline_overrides", "run_bench",
           "write_results"]

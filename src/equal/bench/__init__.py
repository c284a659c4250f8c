"""`equal bench`: selection strategies compared at equal LLM budget on identical (replayed) extractions.

- ``schema``: the bench folder's files as typed records (the manifest, the extraction file,
  ``results.jsonl``) and ``CellKey``, the one key of a measured cell;
- ``strategies``: the one table of strategies (the CLI and ``benchmarks/`` scripts read it);
- ``runner``: running each strategy and measuring what it picked (``results.jsonl``);
- ``tables`` and ``plots``: ``results.md`` and the PNGs, from the measured results;
- ``command``: what ``equal bench`` and ``equal bench-downstream`` do, with their defaults and the
  bar EQUAL is held to (the CLI only parses the options and reports);
- ``downstream``, ``downstream_report``, ``humaneval``: fine-tuning on each cell's pairs and its table.
"""

from equal.bench.runner import BenchData, run_bench
from equal.bench.strategies import ABLATIONS, DEFAULT, STRATEGIES, pipeline_overrides
from equal.bench.tables import Bar, write_results

__all__ = ["ABLATIONS", "DEFAULT", "STRATEGIES", "Bar", "BenchData", "pipeline_overrides", "run_bench",
           "write_results"]

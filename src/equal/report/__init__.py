"""What a user sees of a finished run: the HTML report, the terminal summary, runs compared."""

from equal.report.compare import ComparedRun, Comparison, compare_runs
from equal.report.html import render_report, write_report
from equal.report.rundir import RunView, load_pairs, load_run, load_stats

__all__ = ["ComparedRun", "Comparison", "RunView", "compare_runs", "load_pairs", "load_run", "load_stats",
           "render_report", "write_report"]

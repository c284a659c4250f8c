"""What a user sees of a finished run: the HTML report and the terminal summary."""

from equal.report.html import render_report, write_report
from equal.report.rundir import RunView, load_pairs, load_run, load_stats

__all__ = ["RunView", "load_pairs", "load_run", "load_stats", "render_report", "write_report"]

"""What a user sees of a finished run: the HTML report, the terminal summary, runs compared.

The HTML page (``equal.report.html``) needs the ``report`` extra (matplotlib,
jinja2); it is imported only when it is used, so ``inspect``, ``compare`` and
``export`` work without that extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from equal.report.compare import ComparedRun, Comparison, compare_runs
from equal.report.rundir import RunView, load_pairs, load_run, load_stats

if TYPE_CHECKING:
    from equal.report.html import render_report, write_report

__all__ = ["ComparedRun", "Comparison", "RunView", "compare_runs", "load_pairs", "load_run", "load_stats",
           "render_report", "write_report"]


def __getattr__(name: str) -> Any:
    if name in ("render_report", "write_report"):
        from equal.report import html

        return getattr(html, name)
    raise AttributeError(f"module 'equal.report' has no attribute {name!r}")

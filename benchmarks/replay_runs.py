"""A fixed set of replayed runs and bench cells, written so two commits can be compared with ``diff -r``.

Every run replays stored pairs (``extraction.extractor: replay``), so nothing is
paid and every output is deterministic for its seed. The runs are the demo config
(``examples/demo.yaml``) on the benchmark's extraction file, for the reference
sets ``python_faq`` and ``champ``, at a 5% budget, with six strategies: EQUAL's
defaults, ``bandit.selection`` random, paper and random-clusters, seed 7, and
alpha auto with the centroid document order and a fixed reward offset. Then
``equal bench`` at 5%, seed 0, for EQUAL, random documents and avg-sim top-k on
both sets.

What is kept is what does not depend on the clock:

- each run's ``dataset.jsonl``, ``rounds.jsonl``, ``clusters.json``,
  ``documents.jsonl`` and ``stats.json`` without its wall times
  (``summary.wall_seconds``, ``summary.stage_seconds``, ``summary.paid.seconds``);
- the bench's ``results.jsonl`` without ``selection_seconds`` and ``results.md``
  without its selection wall time column (the plots and the cache are removed).

The cache (corpus vectors, pair embeddings) lives in ``OUT/cache`` while the
script runs, so the folder is self-contained and the corpus is embedded once;
it is removed at the end unless ``--keep-cache``. Compare two commits with::

    git checkout A && python benchmarks/replay_runs.py /tmp/replay-a --data data/bench
    git checkout B && python benchmarks/replay_runs.py /tmp/replay-b --data data/bench
    diff -r /tmp/replay-a /tmp/replay-b
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "examples" / "demo.yaml"

REFERENCE_SETS = ("python_faq", "champ")
BUDGET = 0.05
#: run name -> the config overrides that make it that strategy (on top of the demo config)
RUNS: dict[str, dict[str, Any]] = {
    "equal": {},
    "random": {"bandit.selection": "random"},
    "paper": {"bandit.selection": "paper"},
    "random-clusters": {"bandit.selection": "random-clusters"},
    "equal-seed-7": {"seed": 7},
    "alpha-auto-centroid-offset": {"bandit.alpha": "auto", "bandit.document_order": "centroid",
                                   "reward.offset": 0.12},
}
RUN_FILES = ("dataset.jsonl", "rounds.jsonl", "clusters.json", "documents.jsonl", "stats.json")
BENCH_STRATEGIES = ("EQUAL", "random documents", "avg-sim top-k")
TIMING_COLUMN = "selection wall time"


def replay_run(name: str, reference_set: str, data: Path, cache: Path, out: Path) -> Path:
    """One run of the demo config with ``RUNS[name]``; returns its folder, cut down to ``RUN_FILES``."""
    from equal import load_config, run
    from equal.config import SELECTION_SETTINGS

    run_dir = out / "runs" / reference_set / name
    # the demo config sets keys a baseline selection sets itself; give them the selection's own values, which
    # are what it ran with anyway (a config that asks for other values is refused)
    settings = SELECTION_SETTINGS.get(RUNS[name].get("bandit.selection", "equal"))
    own = dict(settings.values) if settings is not None else {}
    config = load_config(DEMO, {
        "corpus.path": str(data / "extracted.jsonl"), "corpus.id_field": "id", "corpus.label_field": "source",
        "reference.path": str(data / reference_set / "reward.jsonl"),
        "extraction.extractor": "replay", "extraction.cache_dir": str(cache),
        "budget.fraction": BUDGET, "output.dir": str(run_dir), **own, **RUNS[name],
    })
    run(config)
    for path in list(run_dir.iterdir()):
        if path.name not in RUN_FILES:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    _without_wall_times(run_dir / "stats.json")
    return run_dir


def _without_wall_times(path: Path) -> None:
    stats = json.loads(path.read_text())
    summary = stats["summary"]
    summary.pop("wall_seconds", None)
    summary.pop("stage_seconds", None)
    if isinstance(summary.get("paid"), dict):
        summary["paid"].pop("seconds", None)
    path.write_text(json.dumps(stats, indent=2, sort_keys=True))


def bench_cells(data: Path, cache: Path, out: Path) -> Path:
    """``equal bench`` at ``BUDGET``, seed 0, ``BENCH_STRATEGIES`` on both sets; its timing left out.

    The bench keeps its cache in the ``cache`` folder of its ``--out``: a link there to the runs' cache
    shares their vectors.
    """
    bench = out / "bench"
    bench.mkdir(parents=True)
    cache.mkdir(parents=True, exist_ok=True)
    (bench / "cache").symlink_to(cache.resolve(), target_is_directory=True)
    args = [sys.executable, "-m", "equal.cli.main", "bench", str(data), "--extracted", str(data / "extracted.jsonl"),
            "--budget", str(BUDGET), "--seed", "0", "--out", str(bench), "--quiet"]
    for name in REFERENCE_SETS:
        args += ["--reference-set", name]
    for strategy in BENCH_STRATEGIES:
        args += ["--strategy", strategy]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    results = bench / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    for row in rows:
        row.pop("selection_seconds", None)
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    table = bench / "results.md"
    table.write_text(_without_column(table.read_text(), TIMING_COLUMN))
    for path in list(bench.iterdir()):
        if path.name not in ("results.jsonl", "results.md"):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return bench


def _without_column(markdown: str, title: str) -> str:
    """``markdown`` with the column whose header starts with ``title`` dropped from each table."""
    lines, drop = [], None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            drop = None
            lines.append(line)
            continue
        cells = line.split("|")
        if drop is None:
            drop = next((i for i, cell in enumerate(cells) if cell.strip().startswith(title)), -1)
        if drop >= 0:
            del cells[drop]
        lines.append("|".join(cells))
    return "\n".join(lines) + ("\n" if markdown.endswith("\n") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the outputs (must not exist, or be empty)")
    parser.add_argument("--data", type=Path, default=Path("data/bench"),
                        help="the benchmark folder (`equal make-bench`, with extracted.jsonl)")
    parser.add_argument("--keep-cache", action="store_true", help="keep OUT/cache (then diff with -x cache)")
    args = parser.parse_args()
    if args.out.exists() and any(p.name != "cache" for p in args.out.iterdir()):  # a kept cache is reused
        raise SystemExit(f"{args.out} holds more than a cache")
    data = args.data.resolve()
    cache = args.out / "cache"
    started = time.monotonic()
    for reference_set in REFERENCE_SETS:
        for name in RUNS:
            began = time.monotonic()
            replay_run(name, reference_set, data, cache, args.out)
            print(f"{reference_set}/{name}: {time.monotonic() - began:.0f}s", flush=True)
    began = time.monotonic()
    bench_cells(data, cache, args.out)
    print(f"bench: {time.monotonic() - began:.0f}s", flush=True)
    if not args.keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"done in {time.monotonic() - started:.0f}s -> {args.out}")


if __name__ == "__main__":
    main()

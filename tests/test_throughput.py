"""Where a run's time goes (``stage_seconds``), and a small run of the throughput benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from equal import run
from equal.run.schema import read_stats
from equal.stats import Stats

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def test_timed_stages_add_up_and_stay_out_of_the_counters():
    stats = Stats()
    for _ in range(2):
        with stats.timed("rounds"), stats.timed("rounds/reward"):
            time.sleep(0.02)
    stats.inc("llm_calls")
    seconds = stats.seconds()
    assert 0.04 <= seconds["rounds/reward"] <= seconds["rounds"] < 1
    assert stats.as_dict() == {"llm_calls": 1}  # counters are the same for the same inputs; seconds are not


def test_a_run_records_where_its_time_went(replay_config):
    result = run(replay_config())
    stages = read_stats(result.run_dir).summary.stage_seconds
    assert stages == result.summary.stage_seconds
    for stage in ("read inputs", "embed inputs", "warm-up", "cluster", "priors", "rounds", "rounds/extract",
                  "rounds/reward", "reward/embed pairs", "reward/ot", "extract/decontaminate"):
        assert stage in stages, stage
    assert stages["rounds/extract"] + stages["rounds/reward"] <= stages["rounds"] <= result.summary.wall_seconds


def test_throughput_benchmark_prints_its_table(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "throughput.py"), "--passages", "600",
                           "--median-latency", "0.1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {(r["scenario"], r["rounds_in_flight"]): r for r in json.loads((tmp_path / "throughput.json").read_text())}
    assert set(rows) == {("instant", 1), ("instant", 2), ("lognormal", 1), ("lognormal", 2)}
    for row in rows.values():
        assert row["documents"] == 120 and row["documents_per_second"] > 0
        assert 0 <= row["slots_busy"] <= 1
        # the named parts are nested inside the phases they belong to, so what is left over is not negative
        split = row["ms_per_document"]
        assert split["other"] >= 0
        assert split["pair embedding"] > 0 and split["waiting for answers (HTTP and JSON)"] > 0
    assert rows["lognormal", 1]["slots_busy"] > 0
    assert "| instant | local | 1 | 64 | 120 |" in done.stdout

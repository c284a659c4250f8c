"""Where a run's time goes (``stage_seconds``): timed stages, kept apart from the counters."""

from __future__ import annotations

import time

from equal import run
from equal.run.schema import read_stats
from equal.stats import Stats


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

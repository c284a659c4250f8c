"""Golden outputs: a small replayed run, its export and a small bench, checked byte for byte.

A restructuring must not change what equal writes. These tests run the commands
on fixed inputs (replayed pairs, the hashing embedder, fixed seeds) and compare
every deterministic file with the one committed under ``tests/fixtures/golden/``
(wall times are left out). When a change of output is intended, regenerate the
files and commit them with the change::

    EQUAL_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from equal.cli.main import app
from tests.helpers import FIXTURES

GOLDEN = FIXTURES / "golden"
UPDATE = os.environ.get("EQUAL_UPDATE_GOLDEN") == "1"
REGENERATE = "EQUAL_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py"

#: the run directory's files that do not depend on the clock or on where the run was (config.yaml holds paths)
RUN_FILES = ("dataset.jsonl", "rounds.jsonl", "clusters.json", "documents.jsonl", "stats.json",
             "parse_failures.jsonl", "decontaminated.jsonl")


def check_golden(folder: str, produced: dict[str, bytes]) -> None:
    """Compare ``produced`` (file name -> bytes) with ``GOLDEN/folder``; with ``EQUAL_UPDATE_GOLDEN=1``, write it."""
    golden = GOLDEN / folder
    if UPDATE:
        golden.mkdir(parents=True, exist_ok=True)
        for stale in golden.iterdir():
            stale.unlink()
        for name, data in produced.items():
            (golden / name).write_bytes(data)
        return
    expected = {p.name: p.read_bytes() for p in sorted(golden.iterdir())} if golden.is_dir() else {}
    missing, extra = sorted(set(expected) - set(produced)), sorted(set(produced) - set(expected))
    if missing or extra:
        pytest.fail(f"tests/fixtures/golden/{folder}: the code no longer writes {missing or 'nothing missing'}, "
                    f"and now writes {extra or 'nothing new'}; if that is intended, regenerate with {REGENERATE} "
                    "and commit tests/fixtures/golden/")
    for name, data in produced.items():
        if data != expected[name]:
            pytest.fail(f"tests/fixtures/golden/{folder}/{name} differs from what the code writes now "
                        f"({_first_difference(expected[name], data)}); if the change is intended, regenerate with "
                        f"{REGENERATE} and commit tests/fixtures/golden/")


def _first_difference(expected: bytes, got: bytes) -> str:
    old, new = expected.decode().splitlines(), got.decode().splitlines()
    for number, (a, b) in enumerate(zip(old, new), 1):
        if a != b:
            return f"line {number}:\n  golden: {a[:300]}\n  now:    {b[:300]}\n"
    return f"the golden file has {len(old)} lines, the new one {len(new)}"


def _without_wall_times(stats: bytes) -> bytes:
    data = json.loads(stats)
    summary = data["summary"]
    for key in ("wall_seconds", "stage_seconds"):
        summary.pop(key, None)
    if isinstance(summary.get("paid"), dict):
        summary["paid"].pop("seconds", None)
    return json.dumps(data, indent=2, sort_keys=True).encode()


def replay_corpus(path: Path) -> Path:
    """``mini_corpus.jsonl`` as a replay corpus of a few dozen records: two sentences each, a pair per sentence.

    (Replay reads a record as one passage, so the 12 records are cut into records of their own.)
    """
    rows = []
    for line in (FIXTURES / "mini_corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        sentences = [s.strip() for s in re.split(r"(?<=\.)\s+", row["text"]) if s.strip()]
        for part in range(0, len(sentences), 2):
            chunk = sentences[part:part + 2]
            rows.append({"id": f"{row['id']}/{part // 2}", "text": " ".join(chunk), "source": row["source"],
                         "qa_pairs": [{"question": f"What does {row['id']} say in sentence {part + i + 1}?",
                                       "answer": sentence} for i, sentence in enumerate(chunk)]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A replayed run through ``equal run``: the replay corpus, the hashing embedder, seed 3."""
    root = tmp_path_factory.mktemp("golden")
    config = root / "config.yaml"
    config.write_text(json.dumps({
        "corpus": {"path": str(replay_corpus(root / "corpus.jsonl")), "id_field": "id", "label_field": "source"},
        "reference": {"path": str(FIXTURES / "mini_reference.jsonl")},
        "embedding": {"model": "hashing-256"},
        "clustering": {"k": 4},
        "extraction": {"extractor": "replay", "cache_dir": str(root / "cache")},
        "budget": {"fraction": 0.5},
        "output": {"dir": str(root / "run")},
        "seed": 3,
    }))
    result = CliRunner().invoke(app, ["run", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    return root / "run"


def test_a_replayed_run_writes_the_golden_files(golden_run: Path) -> None:
    produced = {name: (golden_run / name).read_bytes() for name in RUN_FILES if (golden_run / name).exists()}
    produced["stats.json"] = _without_wall_times(produced["stats.json"])
    assert len(json.loads(b"[" + produced["rounds.jsonl"].replace(b"}\n{", b"},{") + b"]")) >= 2
    check_golden("run", produced)


def test_export_writes_the_golden_file(golden_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export" / "pairs.jsonl"
    result = CliRunner().invoke(app, ["export", str(golden_run), "--out", str(out), "--format", "sharegpt",
                                      "--max-pairs-per-document", "2"])
    assert result.exit_code == 0, result.output
    check_golden("export", {p.name: p.read_bytes() for p in sorted(out.parent.iterdir())})


def _without_column(markdown: str, title: str) -> str:
    """``markdown`` with the column whose header starts with ``title`` dropped from each table."""
    lines, drop = [], -1
    for line in markdown.splitlines():
        cells = line.split("|")
        if not line.startswith("|"):
            drop = -1
        elif drop < 0:
            drop = next((i for i, cell in enumerate(cells) if cell.strip().startswith(title)), -1)
        if line.startswith("|") and drop >= 0:
            del cells[drop]
        lines.append("|".join(cells))
    return "\n".join(lines) + "\n"


def test_bench_writes_the_golden_results(tmp_path: Path) -> None:
    from tests.helpers import make_bench

    data = make_bench(tmp_path / "bench")
    out = tmp_path / "results"
    args = ["bench", str(data), "--out", str(out), "--embedding", "hashing-256", "--budget", "0.05",
            "--budget", "0.1", "--seed", "0", "--quiet"]
    for strategy in ("EQUAL", "random documents", "avg-sim top-k", "all"):
        args += ["--strategy", strategy]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for row in rows:
        del row["selection_seconds"]
    check_golden("bench", {
        "results.jsonl": "".join(json.dumps(row) + "\n" for row in rows).encode(),
        "results.md": _without_column((out / "results.md").read_text(), "selection wall time").encode(),
    })

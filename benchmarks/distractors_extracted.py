"""The distractor variant restricted to the distractors extracted so far, for the reference sets whose distractors
are all extracted.

The local LLM extracts the variant's distractors in the order of the corpus, which puts a reference set's 75
nearest passages together; while the extraction is unfinished, this writes ``data/bench-distractors-done``: the
benchmark corpus, the distractors that have an extraction, and only the reference sets whose distractors all
have one (a passage without an extraction would read as a passage that yields nothing, which is what a
distractor is meant to show, so it must not be assumed). ``equal bench data/bench-distractors-done`` then
measures those sets; the manifest states the distractors' share.

    python benchmarks/distractors_extracted.py
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "data" / "bench-distractors"
DONE = ROOT / "data" / "bench-distractors-done"
DISTRACTOR = "distractor"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def main() -> None:
    corpus = _jsonl(FULL / "corpus.jsonl")
    extracted = {r["id"]: r for path in (FULL / "extracted.jsonl", FULL / "extracted.jsonl.partial")
                 for r in _jsonl(path)}
    distractors = [r for r in corpus if r["source"] == DISTRACTOR]
    manifest = json.loads((FULL / "manifest.json").read_text())
    complete = [name for name in manifest["reference_sets"]
                if all(r["id"] in extracted for r in distractors if name in r.get("near", []))]
    if not complete:
        raise SystemExit("no reference set has all its distractors extracted yet: run scripts/bench-distractors.sh")
    kept = [r for r in corpus if r["source"] != DISTRACTOR or r["id"] in extracted]
    DONE.mkdir(parents=True, exist_ok=True)
    (DONE / "corpus.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    (DONE / "extracted.jsonl").write_text("".join(json.dumps(extracted[r["id"]], ensure_ascii=False) + "\n"
                                                  for r in kept if r["id"] in extracted))
    for name in complete:
        shutil.copytree(FULL / name, DONE / name, dirs_exist_ok=True)
    kinds = Counter(r["kind"] for r in kept if r["source"] == DISTRACTOR)
    manifest.update(passages=len(kept), sources=dict(Counter(r["source"] for r in kept)),
                    reference_sets={name: manifest["reference_sets"][name] for name in complete})
    manifest["distractors"]["kinds"] = dict(sorted(kinds.items()))
    (DONE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    share = sum(kinds.values()) / len(kept)
    print(f"{DONE}: {len(kept)} passages, {sum(kinds.values())} distractors ({share:.1%}); reference sets with "
          f"every distractor extracted: {', '.join(complete)}")


if __name__ == "__main__":
    main()

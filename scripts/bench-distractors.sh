#!/usr/bin/env bash
# The benchmark variant where similarity misleads (docs/benchmarks.md): the benchmark corpus plus, for each
# reference set, the 75 passages of index pages, tables of contents, release notes and formula lists of the
# installed docs nearest to it. Builds data/bench-distractors, reuses the kept extraction of every benchmark
# passage and extracts only the distractors with the local LLM (resumable; `--save` keeps their extraction in
# benchmarks/data/, from where a fresh clone resumes).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1
DATA=data/bench-distractors
SAVED=benchmarks/data/bench-distractors-extracted.jsonl.gz  # the distractors' rows only
[ -f data/bench/extracted.jsonl ] || bash scripts/bench-extract.sh
[ -f "$DATA/manifest.json" ] || equal make-bench "$DATA" --distractors 75
if [ "${1:-}" = "--save" ]; then
  # the distractors extracted so far, finished or not (a later run extracts only the rest)
  cat "$DATA/extracted.jsonl" "$DATA/extracted.jsonl.partial" 2>/dev/null | grep '"source": "distractor"' \
    | sort -u | gzip -9 -n > "$SAVED"
  ls -l "$SAVED"
  exit 0
fi
if [ ! -f "$DATA/extracted.jsonl" ]; then  # every benchmark passage's pairs, and the distractors' if kept
  { cat data/bench/extracted.jsonl; if [ -f "$SAVED" ]; then gunzip -c "$SAVED"; fi; } > "$DATA/extracted.jsonl"
fi
equal extract --corpus "$DATA/corpus.jsonl" --id-field id --label-field source --extractor local \
  --cache-dir "$DATA/cache" --out "$DATA/extracted.jsonl" "$@"

#!/usr/bin/env bash
# The benchmark data: build the corpus (equal make-bench) and extract every passage
# with the local LLM, resumably. It takes hours on 2 cores; kill it at any time and run it
# again. `--save` compresses the progress into benchmarks/data/ (kept in the repository),
# from where a fresh clone resumes instead of starting over.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1
DATA=data/bench
SAVED=benchmarks/data/bench-extracted.jsonl.gz            # every passage extracted
SAVED_PARTIAL=benchmarks/data/bench-extracted.partial.jsonl.gz  # progress, while unfinished
PARTIAL=$DATA/extracted.jsonl.partial
if [ "${1:-}" = "--save" ]; then
  if [ -f "$DATA/extracted.jsonl" ]; then
    gzip -9 -n -c "$DATA/extracted.jsonl" > "$SAVED" && rm -f "$SAVED_PARTIAL"
  else
    gzip -9 -n -c "$PARTIAL" > "$SAVED_PARTIAL"
  fi
  ls -l benchmarks/data/
  exit 0
fi
[ -f "$DATA/manifest.json" ] || equal make-bench "$DATA"
if [ ! -f "$DATA/extracted.jsonl" ] && [ ! -f "$PARTIAL" ]; then
  if [ -f "$SAVED" ]; then
    gunzip -c "$SAVED" > "$DATA/extracted.jsonl"
  elif [ -f "$SAVED_PARTIAL" ]; then
    gunzip -c "$SAVED_PARTIAL" > "$PARTIAL"
  fi
fi
# on a finished extracted.jsonl this extracts nothing (only passages the corpus gained)
equal extract --corpus "$DATA/corpus.jsonl" --id-field id --label-field source --extractor local \
  --cache-dir "$DATA/cache" --out "$DATA/extracted.jsonl" "$@"

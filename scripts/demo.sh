#!/usr/bin/env bash
# README command 1: set up, build the real sample corpus, run EQUAL and, beside it,
# random selection at the same budget, then compare where each spent its LLM calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
[ -f data/sample/corpus.jsonl ] || equal make-sample data/sample
equal run examples/demo.yaml --out runs/demo-equal
equal run examples/demo.yaml --selection random --out runs/demo-random
equal compare runs/demo-equal runs/demo-random --relevant python_docs
equal inspect runs/demo-equal
equal report runs/demo-equal --baseline runs/demo-random

#!/usr/bin/env bash
# README command 2: set up, then run the whole test suite (real local LLM and embedder included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
ruff check src tests benchmarks
mypy src/equal
python -m pytest -q "$@"

#!/usr/bin/env bash
# The downstream table on 2 CPU cores (docs/benchmarks.md, "Downstream"): LoRA fine-tunes of the packaged
# model on each strategy's pairs, scored on the held-out parts. Hours; kill it at any time and run it again:
# every stage resumes, and the rows are copied into benchmarks/data/ after each cell's stage, from where a
# fresh clone resumes instead of recomputing. Stages in order: 5% at seed 0 for every reference set, 10% at
# seed 0 (CHAMP first), seeds 1 and 2 of EQUAL and random documents at 5%, then two more learning rates on
# CHAMP at 5%. `STAGES="1 3"` runs only those, in that order.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE  # torch's threads sleep while they wait, so other work can run
DATA=data/bench
OUT=runs/bench
SAVED=benchmarks/data/downstream-cpu.jsonl
[ -f "$DATA/extracted.jsonl" ] || bash scripts/bench-extract.sh
mkdir -p "$OUT"
# resume from the committed rows (a row already in the folder's file is not read twice: cells are keyed)
if [ -f "$SAVED" ] && [ ! -f "$OUT/downstream.jsonl" ]; then cp "$SAVED" "$OUT/downstream.jsonl"; fi
RECIPE=(--lora 16 --dtype auto --learning-rate 1e-4 --epochs 1 --max-length 256 --train-pairs 256
        --eval-sample 64 --batch-size 8)
ALL=(--strategy EQUAL --strategy "avg-sim top-k" --strategy "random documents" --strategy DSIR
     --strategy "round-robin similarity")
PAIR=(--strategy EQUAL --strategy "random documents")

cells() {  # the bench cells (resumable: seconds once measured), then their downstream rows
  local recipe=("${RECIPE[@]}")
  if [ -n "${LR:-}" ]; then recipe+=(--learning-rate "$LR"); fi
  equal bench "$DATA" --out "$OUT" --quiet "$@" > /dev/null
  # a failure stops the script (set -e): a stage is never skipped silently; run it again to resume
  equal bench-downstream "$DATA" --out "$OUT" "${recipe[@]}" "$@"
  cp "$OUT/downstream.jsonl" "$SAVED"
}

for stage in ${STAGES:-1 2 3 4}; do
  echo "== stage $stage, $(date -u +%H:%M:%S)"
  case $stage in
    1) for set in python_faq champ humaneval; do cells --budget 0.05 --seed 0 "${ALL[@]}" --reference-set $set; done ;;
    2) cells --budget 0.1 --seed 0 "${ALL[@]}" --reference-set champ
       cells --budget 0.1 --seed 0 "${ALL[@]}" --reference-set python_faq
       cells --budget 0.1 --seed 0 "${ALL[@]}" --reference-set humaneval ;;
    3) for set in python_faq champ humaneval; do cells --budget 0.05 --seed 1 --seed 2 "${PAIR[@]}" --reference-set $set; done ;;
    4) for lr in 3e-5 3e-4; do LR=$lr cells --budget 0.05 --seed 0 "${ALL[@]}" --reference-set champ; done ;;
  esac
done

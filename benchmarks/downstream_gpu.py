"""The downstream table on a GPU: fine-tune the packaged 0.5B model on every bench cell's pairs there.

On 2 CPU cores a full fine-tune of Qwen2.5-Coder-0.5B runs a few steps a minute,
so ``equal bench-downstream`` is only practical there with a tiny model or a
handful of steps. This script moves the fine-tuning to a GPU machine that has
torch and transformers (and the ``gguf`` package) but not equal, in three steps:

1. ``pack`` (here): ``equal bench-downstream DATA --out OUT --prepare-only``
   must have written ``OUT/downstream-cells.jsonl.gz`` (each cell's pairs). ``pack``
   copies it into one small folder with the held-out examples of each reference
   set and the packaged model's tokenizer, converted from the GGUF once (needs
   ``gguf`` here; about 11 MB). That folder is what travels.
2. ``train`` (on the GPU machine): loads ``src/equal/bench/downstream.py`` by path
   (no equal install), the GGUF dequantized to float32, and fine-tunes and scores
   every cell with bf16 autocast, appending to ``--out/downstream.jsonl``;
   ``--minutes`` stops before the next cell once spent (a rerun resumes).
3. Back here, copy ``downstream.jsonl`` into ``OUT`` and run ``equal
   bench-downstream DATA --out OUT`` with the same recipe flags: every cell is
   found done, so it only writes the downstream section of ``results.md`` and
   ``downstream-nll.png``.

    equal bench-downstream data/bench --out runs/bench --budget 0.05 --budget 0.1 --seed 0 --prepare-only
    python benchmarks/downstream_gpu.py pack --out runs/bench --to gpu-pack
    python benchmarks/downstream_gpu.py train --pack gpu-pack --model M.gguf --out $OUT --minutes 8
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the label every machine gives the packaged model, so rows measured on a GPU resume here
PACKAGED = "packaged Qwen2.5-Coder-0.5B-Instruct GGUF"


def _downstream():
    """``equal.bench.downstream`` loaded from its file: it imports nothing of equal at module level."""
    path = HERE.parent / "src" / "equal" / "bench" / "downstream.py"
    spec = importlib.util.spec_from_file_location("equal_bench_downstream", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def pack(args: argparse.Namespace) -> None:
    from equal.bench import BenchData

    ds = _downstream()
    cells = ds.read_cells(args.out / ds.CELLS_FILE)
    if not cells:
        raise SystemExit(f"no cells in {args.out / ds.CELLS_FILE}: run `equal bench-downstream ... --prepare-only`")
    args.to.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.out / ds.CELLS_FILE, args.to / ds.CELLS_FILE)
    data = BenchData(args.data, args.data / "extracted.jsonl")
    heldout = ds.heldout_sets(data, dict.fromkeys(c["reference_set"] for c in cells))
    (args.to / "heldout.json").write_text(json.dumps(
        {name: [{"question": e.question, "answer": e.answer} for e in examples] for name, examples in heldout.items()}))
    ds.load_tokenizer(None).save_pretrained(str(args.to / "tokenizer"))
    print(f"{len(cells)} cells, held-out sets {list(heldout)} -> {args.to}")


def train(args: argparse.Namespace) -> None:
    ds = _downstream()
    cells = ds.read_cells(args.pack / ds.CELLS_FILE)
    heldout = {name: [ds.Example(e["question"], e["answer"]) for e in examples]
               for name, examples in json.loads((args.pack / "heldout.json").read_text()).items()}
    config = ds.TrainConfig(epochs=args.epochs, max_steps=args.max_steps, learning_rate=args.learning_rate,
                            batch_size=args.batch_size, max_length=args.max_length)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.resume is not None and args.resume.exists() and not (args.out / ds.RESULTS_FILE).exists():
        shutil.copy(args.resume, args.out / ds.RESULTS_FILE)
    started = time.monotonic()
    rows = ds.run_downstream(cells, heldout, args.out, model=args.model, tokenizer=args.pack / "tokenizer",
                             config=config, model_name=PACKAGED if args.packaged else str(args.model),
                             stop_at=started + 60 * args.minutes,
                             log=lambda line: print(f"{time.monotonic() - started:6.0f}s {line}", flush=True))
    print(f"{len(rows)} rows in {args.out / ds.RESULTS_FILE}, {time.monotonic() - started:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("pack", help="cells, held-out examples and tokenizer into one folder (here)")
    p.add_argument("--data", type=Path, default=Path("data/bench"))
    p.add_argument("--out", type=Path, default=Path("runs/bench"), help="the bench results folder")
    p.add_argument("--to", type=Path, default=Path("gpu-pack"))
    p.set_defaults(run=pack)
    t = sub.add_parser("train", help="fine-tune and score every cell (on the GPU machine)")
    t.add_argument("--pack", type=Path, required=True)
    t.add_argument("--model", type=Path, required=True, help="the GGUF (or a HF model folder)")
    t.add_argument("--packaged", action=argparse.BooleanOptionalAction, default=True,
                   help="--model is the packaged GGUF (rows resume under its label here)")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--resume", type=Path, help="a downstream.jsonl of an earlier call to go on from")
    t.add_argument("--minutes", type=float, default=8.0, help="start no cell after this many minutes")
    # the defaults of `equal bench-downstream`: keep them equal, or pass the same flags there
    t.add_argument("--epochs", type=float, default=1.0)
    t.add_argument("--max-steps", type=int, default=-1)
    t.add_argument("--learning-rate", type=float, default=2e-5)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--max-length", type=int, default=1024)
    t.set_defaults(run=train)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

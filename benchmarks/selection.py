"""EQUAL variants against random selection on a corpus with stored pairs (zero LLM cost).

Replays the pairs stored with each passage (``equal extract`` writes them),
so every strategy sees identical extractions. The strategies are those of
``equal bench`` that run the pipeline (``equal.bench.strategies``, one table
for both). For each budget, strategy and seed it runs the full pipeline and
reports the share of extracted documents from the relevant source and the OT
distance of the output pairs to a held-out reference split (embedded with the
base model, one yardstick for all).

    python benchmarks/selection.py --corpus data/sample/extracted.jsonl \\
        --reference data/sample/reference.jsonl --heldout data/sample/reference_heldout.jsonl \\
        --relevant python_docs --budgets 0.05 0.1 0.2 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from equal import load_config, run
from equal.bench import pipeline_overrides
from equal.corpus import read_reference
from equal.embedding import EmbeddingCache, SentenceTransformerEmbedder, embed_cached
from equal.reward import ot_distance

#: the strategies of `equal bench` (equal.bench.strategies, the one table) this script runs by default
DEFAULT = ["random documents", "random clusters", "EQUAL, paper settings", "EQUAL, no similarity prior",
           "EQUAL, no warm-up prior", "EQUAL", "EQUAL, alpha auto"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--relevant", required=True)
    parser.add_argument("--label-field", default="source")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=DEFAULT,
                        help="names from `equal bench`'s table of strategies that run the pipeline")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra config overrides")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    extra = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    overrides = {name: pipeline_overrides(name) for name in args.strategies}  # an unknown name fails here

    base = SentenceTransformerEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp) / "cache"
        heldout = embed_cached(base, [p.as_text() for p in read_reference(args.heldout)],
                               EmbeddingCache(cache_dir / "embeddings.sqlite"))
        lines = [f"Corpus {args.corpus}, relevant label `{args.relevant}`, seeds {args.seeds}; mean over seeds "
                 "(min-max). Relevant share: fraction of extracted documents from the relevant source. "
                 "OT: distance of the output pairs to the held-out reference (lower is better).", "",
                 "| budget | strategy | relevant share | OT to held-out | pairs | selection s |",
                 "|---|---|---|---|---|---|"]
        for budget in args.budgets:
            for name in args.strategies:
                shares, ots, pairs, secs = [], [], [], []
                for seed in args.seeds:
                    cfg = load_config(None, {
                        "corpus.path": str(args.corpus), "corpus.id_field": "id",
                        "corpus.label_field": args.label_field, "reference.path": str(args.reference),
                        "extraction.extractor": "replay", "extraction.replay_field": "qa_pairs",
                        "extraction.cache_dir": str(cache_dir), "budget.fraction": budget, "seed": seed,
                        "output.dir": str(Path(tmp) / "run"), **overrides[name], **extra,
                    })
                    started = time.monotonic()
                    result = run(cfg)
                    secs.append(time.monotonic() - started)
                    by_label = result.summary.extracted_by_label or {}
                    shares.append(by_label.get(args.relevant, 0) / max(1, sum(by_label.values())))
                    x = embed_cached(base, [p.as_text() for p in result.pairs],
                                     EmbeddingCache(cache_dir / "embeddings.sqlite"))
                    ots.append(ot_distance(x, heldout).value if len(x) else float("nan"))
                    pairs.append(len(result.pairs))
                lines.append(f"| {budget:.0%} | {name} | {np.mean(shares):.3f} ({min(shares):.2f}-{max(shares):.2f}) "
                             f"| {np.mean(ots):.4f} ({min(ots):.3f}-{max(ots):.3f}) | {np.mean(pairs):.0f} "
                             f"| {np.mean(secs):.1f} |")
                print(lines[-1], flush=True)
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


if __name__ == "__main__":
    main()

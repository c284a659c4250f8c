"""Does contrastive alignment help? Measured on a labelled corpus with stored extractions.

Needs a corpus extracted once by ``equal extract`` (one line per passage with
``qa_pairs`` and a label), the reference set and a held-out reference split.
Prints a markdown report (and writes it with ``--out``):

1. retrieval: for held-out documents (never trained on), is the nearest pair
   one of the document's own (recall@1), with the base and the aligned model;
2. reward model: how well the OT distance of a document's pairs to the
   reference separates relevant from other documents (ROC AUC), with pairs and
   reference embedded by the base or by the aligned model;
3. end to end: EQUAL with and without alignment at the same budget, replaying
   the stored pairs, over several seeds: the share of extracted documents from
   the relevant source, and the OT distance of the output pairs to the held-out
   reference, always embedded by the *base* model so both arms share one yardstick.

    python benchmarks/alignment.py --extracted data/sample/extracted.jsonl \\
        --reference data/sample/reference.jsonl --heldout data/sample/reference_heldout.jsonl \\
        --relevant python_docs --seeds 0 1 2 --out docs/alignment.md
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from equal import load_config, run
from equal.alignment import align_embedder, build_examples
from equal.corpus import read_reference
from equal.embedding import SentenceTransformerEmbedder
from equal.records import QAPair
from equal.reward import ot_distance


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def load_extracted(path: Path, label_field: str) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in rows if r.get("qa_pairs")] if rows else []


def pair_text(p: dict) -> str:
    return QAPair(p["question"], p["answer"]).as_text()


def retrieval_and_reward(rows, reference, relevant, label_field, seed, work: Path, settings: dict) -> dict:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    train = [rows[i] for i in order[: len(rows) // 2]]
    test = [rows[i] for i in order[len(rows) // 2:]]
    base = SentenceTransformerEmbedder()
    pair_texts = [pair_text(p) for r in train for p in r["qa_pairs"]]
    pair_doc = [i for i, r in enumerate(train) for _ in r["qa_pairs"]]
    examples = build_examples([r["id"] for r in train], [r["text"] for r in train], pair_texts, pair_doc,
                              base.encode([r["text"] for r in train]), base.encode(pair_texts),
                              random_state=seed)
    started = time.monotonic()
    model_dir = align_embedder(base.path, examples, work / f"aligned-{seed}", random_state=seed, **settings)
    train_seconds = time.monotonic() - started
    aligned = SentenceTransformerEmbedder(str(model_dir))
    out = {"train_examples": len(examples), "train_seconds": train_seconds}
    test_pairs = [pair_text(p) for r in test for p in r["qa_pairs"]]
    test_owner = np.array([i for i, r in enumerate(test) for _ in r["qa_pairs"]])
    positive = np.array([r.get(label_field) == relevant for r in test])
    ref_texts = [p.as_text() for p in reference]
    for name, model in (("base", base), ("aligned", aligned)):
        d, q = model.encode([r["text"] for r in test]), model.encode(test_pairs)
        top = np.argmax(d @ q.T, axis=1)
        out[f"recall@1_{name}"] = float((test_owner[top] == np.arange(len(test))).mean())
        ref = model.encode(ref_texts)
        distances = np.array([ot_distance(q[test_owner == i], ref).value for i in range(len(test))])
        out[f"reward_auc_{name}"] = roc_auc(-distances, positive)
    return out


def end_to_end(extracted: Path, reference: Path, heldout_pairs, relevant, seed, aligned: bool, work: Path,
               budget: float, warmup: float, reward_model: str) -> dict:
    cfg = load_config(None, {
        "corpus.path": str(extracted), "corpus.id_field": "id", "corpus.label_field": "source",
        "reference.path": str(reference), "extraction.extractor": "replay", "extraction.replay_field": "qa_pairs",
        "budget.fraction": budget, "warmup.fraction_of_budget": warmup, "seed": seed,
        "alignment.enabled": aligned, "alignment.reward_model": reward_model,
        "output.dir": str(work / f"run-{'aligned' if aligned else 'base'}-{seed}"),
    })
    started = time.monotonic()
    result = run(cfg)
    by_label = result.summary.extracted_by_label or {}
    base = SentenceTransformerEmbedder()
    x = base.encode([p.as_text() for p in result.pairs])
    y = base.encode([p.as_text() for p in heldout_pairs])
    return {"relevant_share": by_label.get(relevant, 0) / max(1, sum(by_label.values())),
            "ot_heldout": ot_distance(x, y).value if len(x) else float("nan"),
            "pairs": len(result.pairs), "seconds": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extracted", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--relevant", required=True, help="label value of the relevant source")
    parser.add_argument("--label-field", default="source")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=0.2)
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up share of the budget")
    parser.add_argument("--reward-model", default="aligned", choices=["aligned", "base"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    rows = load_extracted(args.extracted, args.label_field)
    reference = read_reference(args.reference)
    heldout = read_reference(args.heldout)
    settings = {"epochs": args.epochs, "learning_rate": args.lr}
    lines = [f"Corpus: {args.extracted} ({len(rows)} passages with pairs); reference {len(reference)}, "
             f"held-out reference {len(heldout)}; relevant label `{args.relevant}`; seeds {args.seeds}.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        part1 = [retrieval_and_reward(rows, reference, args.relevant, args.label_field, s, work, settings)
                 for s in args.seeds]
        lines += ["### Retrieval and reward separation (half the documents train, the other half test)", "",
                  "| seed | train examples | train s | recall@1 base | recall@1 aligned | reward AUC base "
                  "| reward AUC aligned |", "|---|---|---|---|---|---|---|"]
        for s, r in zip(args.seeds, part1):
            lines.append(f"| {s} | {r['train_examples']} | {r['train_seconds']:.0f} | {r['recall@1_base']:.3f} "
                         f"| {r['recall@1_aligned']:.3f} | {r['reward_auc_base']:.3f} "
                         f"| {r['reward_auc_aligned']:.3f} |")
        mean = {k: np.mean([r[k] for r in part1]) for k in part1[0]}
        lines.append(f"| mean | {mean['train_examples']:.0f} | {mean['train_seconds']:.0f} | "
                     f"{mean['recall@1_base']:.3f} | {mean['recall@1_aligned']:.3f} | {mean['reward_auc_base']:.3f} "
                     f"| {mean['reward_auc_aligned']:.3f} |")
        lines += ["", f"### End to end: budget {args.budget:.0%} of the corpus, warm-up {args.warmup:.0%} of it, "
                  f"reward model `{args.reward_model}`", "",
                  "| seed | relevant share, no alignment | relevant share, alignment | OT to held-out, no alignment "
                  "| OT to held-out, alignment |", "|---|---|---|---|---|"]
        rows_e2e = []
        for s in args.seeds:
            off = end_to_end(args.extracted, args.reference, heldout, args.relevant, s, False, work, args.budget,
                             args.warmup, args.reward_model)
            on = end_to_end(args.extracted, args.reference, heldout, args.relevant, s, True, work, args.budget,
                            args.warmup, args.reward_model)
            rows_e2e.append((off, on))
            lines.append(f"| {s} | {off['relevant_share']:.3f} | {on['relevant_share']:.3f} | "
                         f"{off['ot_heldout']:.4f} | {on['ot_heldout']:.4f} |")
        lines.append(f"| mean | {np.mean([a['relevant_share'] for a, _ in rows_e2e]):.3f} | "
                     f"{np.mean([b['relevant_share'] for _, b in rows_e2e]):.3f} | "
                     f"{np.mean([a['ot_heldout'] for a, _ in rows_e2e]):.4f} | "
                     f"{np.mean([b['ot_heldout'] for _, b in rows_e2e]):.4f} |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()

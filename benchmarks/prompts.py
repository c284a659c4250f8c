"""The extraction prompt, old against new, on the packaged model: pair statistics of real extractions.

Three steps, each resumable (answers go through a response cache; rows are appended as they come):

    python benchmarks/prompts.py extract --variant task-champ --reference-set champ --examples 3 --passages sample
    python benchmarks/prompts.py extract --variant task-champ --reference-set champ --examples 3 --passages picks
    python benchmarks/prompts.py stats --reference-set champ --variant task-champ

- ``sample``: 300 passages stratified over the three sources among those the packaged model extracted with
  llama.cpp in ``benchmarks/data/bench-extracted.jsonl.gz`` (all 18 Wikipedia ones, 141 Python-docs and 141
  SymPy-docs passages): their stored pairs are the old prompt's on the same runtime, so no re-extraction is
  needed for the old side. They are the longest passages of the corpus (the GPU run went shortest first).
- ``picks``: the passages the bench's strategies choose at 5% (seed 0) for the reference set, so a
  downstream cell can be trained on the same selection's new pairs.
- ``extract`` writes ``runs/prompts/<variant>.jsonl`` (rows like the bench's extraction file, with the answer's
  output tokens); ``--save`` gzips it into ``benchmarks/data/prompts/``, from where it is read back.
- ``grades`` asks the packaged model for the 1-5 grade of a sample of each variant's pairs, beside the cheap
  checks' grade.
- ``refine`` runs the packaged model's refine pass over a sample of each variant's pairs.
- ``cells`` writes the downstream cells of the new pairs on the strategies' own selections, beside the old
  cells, into ``runs/prompts-downstream`` for ``equal bench-downstream``.
- ``stats`` prints the table of docs/benchmarks.md: pairs per passage, answer words against the reference's
  median, the share of questions that point at their passage, the cheap grades, tokens per passage, answers
  cut at ``max_tokens``, pairs that copy the reward examples (removed by decontamination), and the OT distance
  of the kept pairs to the held-out part.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "bench"
WORK = ROOT / "runs" / "prompts"
SAVED = ROOT / "benchmarks" / "data" / "prompts"
MAX_TOKENS = 768


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / "extracted.jsonl").read_text().splitlines() if line.strip()]


def sample_ids(rows: list[dict[str, Any]]) -> list[str]:
    """300 llama.cpp-extracted passages: every Wikipedia one, and 141 of each documentation source (seeded)."""
    rng = random.Random(0)
    llama = [r for r in rows if r.get("extracted_with", "llama.cpp") == "llama.cpp"]
    ids: list[str] = []
    for source in ("wikipedia", "python_docs", "sympy_docs"):  # Wikipedia has only 18; the two others share the rest
        mine = sorted(r["id"] for r in llama if r["source"] == source)
        share = len(mine) if source == "wikipedia" else (300 - len(ids)) // (2 if source == "python_docs" else 1)
        ids += rng.sample(mine, min(share, len(mine)))
    return ids


def pick_ids(reference_set: str, strategies: list[str], budget: float = 0.05, seed: int = 0) -> list[str]:
    """The passages the bench's strategies choose for ``reference_set`` (union, in first-chosen order)."""
    from equal.bench import BenchData
    from equal.bench.strategies import STRATEGIES, Context

    data = BenchData(DATA, DATA / "extracted.jsonl")
    spec = data.manifest().reference_sets[reference_set]
    rows = [p.to_json() for p in data.passages()]  # as the strategies' Context reads them
    ctx = Context(corpus=data.extracted, rows=rows, reward_reference=DATA / spec.reward, embedding_model="minilm",
                  cache_dir=ROOT / "runs" / "bench" / "cache", work_dir=WORK)
    WORK.mkdir(parents=True, exist_ok=True)
    chosen: dict[str, None] = {}
    for name in strategies:
        chosen.update(dict.fromkeys(STRATEGIES[name](ctx, budget, seed).document_ids))
    return list(chosen)


def _task(args: argparse.Namespace) -> Any:
    from equal.corpus import read_reference
    from equal.extraction.task import ExtractionTask, choose_examples

    examples = []
    if args.examples:
        reward = read_reference(DATA / args.reference_set / "reward.jsonl", min_examples=1)
        examples = choose_examples(reward, args.examples, seed=0)
    return ExtractionTask(max_tokens=MAX_TOKENS, examples=examples, description=args.description or "")


def extract(args: argparse.Namespace) -> None:
    from equal.config import LocalExtractionConfig
    from equal.extraction.extractor import LLMExtractor
    from equal.llm.cache import ResponseCache
    from equal.records import Document
    from equal.run.builders import build_llm
    from equal.stats import Stats

    rows = {r["id"]: r for r in _rows()}
    ids = sample_ids(list(rows.values())) if args.passages == "sample" else \
        pick_ids(args.reference_set, args.strategy or DEFAULT_PICKS)
    out = WORK / f"{args.variant}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["id"] for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()
    todo = [i for i in ids if i not in done]
    print(f"{args.variant}: {len(ids)} passages, {len(todo)} to extract", flush=True)
    stats = Stats()
    llm = build_llm(LocalExtractionConfig(n_ctx=4096, n_threads=args.threads, max_tokens=MAX_TOKENS), stats, 0)
    extractor = LLMExtractor(llm, _task(args), ResponseCache(WORK / "cache" / "responses.sqlite"), stats)
    try:
        with out.open("a") as f:
            for start in range(0, len(todo), 4):
                batch = [Document(id=i, text=rows[i]["text"]) for i in todo[start:start + 4]]
                for doc, ex in zip(batch, extractor.extract(batch), strict=True):
                    if ex.generation.failed:
                        continue
                    f.write(json.dumps({
                        "id": doc.id, "text": doc.text, "source": rows[doc.id]["source"],
                        "qa_pairs": [{"question": p.question, "answer": p.answer} for p in ex.pairs],
                        "tokens": ex.generation.tokens_in + ex.generation.tokens_out,
                        "tokens_in": ex.generation.tokens_in, "tokens_out": ex.generation.tokens_out,
                        "parse_ok": ex.parse_ok, "extracted_with": "llama.cpp", "prompt": args.variant,
                    }, ensure_ascii=False) + "\n")
                f.flush()
                print(f"{min(start + 4, len(todo))}/{len(todo)}", flush=True)
    finally:
        extractor.close()


DEFAULT_PICKS = ["EQUAL", "avg-sim top-k", "random documents", "DSIR", "round-robin similarity"]


def read_variant(name: str) -> dict[str, dict[str, Any]]:
    """A variant's rows by id: the working file, else the saved one; ``old`` is the stored extraction."""
    if name == "old":
        return {r["id"]: r for r in _rows()}
    path = WORK / f"{name}.jsonl"
    if path.exists():
        lines = path.read_text().splitlines()
    else:
        with gzip.open(SAVED / f"{name}.jsonl.gz", "rt") as f:
            lines = f.read().splitlines()
    return {r["id"]: r for r in (json.loads(line) for line in lines if line.strip())}


def stats(args: argparse.Namespace) -> None:
    import numpy as np

    from equal.config import EmbeddingConfig
    from equal.corpus import read_reference
    from equal.embedding import EmbeddingCache, embed_cached
    from equal.filters import NgramIndex
    from equal.quality import ReferenceShape, grade
    from equal.records import QAPair
    from equal.reward import ot_distance
    from equal.run.builders import build_embedder

    reward = read_reference(DATA / args.reference_set / "reward.jsonl", min_examples=1)
    heldout = read_reference(DATA / args.reference_set / "heldout.jsonl", min_examples=1)
    shape = ReferenceShape.of(reward)
    index = NgramIndex(t for p in reward for t in (p.question, p.answer))
    embedder = build_embedder(EmbeddingConfig(model="minilm"))
    cache = EmbeddingCache(ROOT / "runs" / "bench" / "cache" / "embeddings.sqlite")
    target = embed_cached(embedder, [p.as_text() for p in heldout], cache)
    variants = {name: read_variant(name) for name in ["old", *args.variant]}
    ids = [i for i in variants[args.variant[0]] if all(i in v for v in variants.values())]
    if args.passages == "sample":
        ids = [i for i in ids if i in set(sample_ids(_rows()))]
    print(f"{args.reference_set}: {len(ids)} passages extracted by every variant; reference median answer "
          f"{shape.median_answer_words:.0f} words")
    header = ["variant", "pairs/passage", "passages with no pair", "answer words (median)", "point at passage",
              "grades 5/4/3/2/1", "copies of reward examples", "tokens in/out per passage", "cut at max_tokens",
              "OT to held-out (kept pairs)"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, rows in variants.items():
        pairs = [QAPair(p["question"], p["answer"], document_id=i) for i in ids for p in rows[i]["qa_pairs"]]
        kept = [p for p in pairs if not index.copies(p)]
        grades = Counter(grade(p, shape).grade for p in kept)
        pointing = sum("points_at_passage" in grade(p, shape).flags for p in kept)
        words = [len(p.answer.split()) for p in kept]
        vectors = embed_cached(embedder, [p.as_text() for p in kept], cache)
        tokens_out = [rows[i].get("tokens_out") for i in ids]
        cut = (f"{sum(t >= MAX_TOKENS for t in tokens_out if t is not None) / len(ids):.1%}"
               if all(t is not None for t in tokens_out) else "-")
        tokens_in = [rows[i].get("tokens_in") for i in ids]
        tok = (f"{statistics.mean(tokens_in):.0f}/{statistics.mean(tokens_out):.0f}"  # type: ignore[arg-type,type-var]
               if all(t is not None for t in tokens_in + tokens_out) else
               f"{statistics.mean(rows[i]['tokens'] for i in ids):.0f} (in+out)")
        print("| " + " | ".join([
            name, f"{len(pairs) / len(ids):.2f}", f"{sum(not rows[i]['qa_pairs'] for i in ids) / len(ids):.1%}",
            f"{statistics.median(words):.0f}" if words else "-", f"{pointing / max(len(kept), 1):.1%}",
            "/".join(str(grades.get(g, 0)) for g in (5, 4, 3, 2, 1)), f"{len(pairs) - len(kept)}", tok, cut,
            f"{ot_distance(np.asarray(vectors), target).value:.3f}" if kept else "-",
        ]) + " |")
    cache.close()


def _sampled_pairs(variant: str, sample: set[str], n: int) -> list[Any]:
    """A seeded sample of ``n`` of the pairs ``variant`` extracted from the ``sample`` passages."""
    from equal.records import QAPair

    rows = read_variant(variant)
    pairs = [QAPair(p["question"], p["answer"], document_id=i) for i in sorted(sample & set(rows))
             for p in rows[i]["qa_pairs"]]
    return random.Random(0).sample(pairs, min(n, len(pairs)))


def llm_grades(args: argparse.Namespace) -> None:
    """The packaged model's 1-5 grade of a seeded sample of each variant's pairs (the sample passages), beside the
    cheap checks' grade of the same pairs; answers are cached in ``runs/prompts/cache``."""
    from equal.config import LocalExtractionConfig
    from equal.corpus import read_reference
    from equal.extraction.task import choose_examples
    from equal.llm.cache import ResponseCache
    from equal.quality import ReferenceShape, grade
    from equal.quality.llm import grade_request, parse_grade
    from equal.run.budget import Budget
    from equal.run.builders import build_llm
    from equal.run.quality import CachedRequests
    from equal.stats import Stats

    reward = read_reference(DATA / args.reference_set / "reward.jsonl", min_examples=1)
    shape, examples = ReferenceShape.of(reward), choose_examples(reward, 3, seed=0)
    sample = set(sample_ids(_rows()))
    stats = Stats()
    llm = build_llm(LocalExtractionConfig(n_ctx=4096, n_threads=args.threads), stats, 0)
    cache = ResponseCache(WORK / "cache" / "responses.sqlite")
    print("| variant | pairs graded | LLM grades 5/4/3/2/1 | LLM mean | checks' grades 5/4/3/2/1 "
          "| agreement (same grade) |")
    print("|---|---|---|---|---|---|")
    try:
        for name in ["old", *args.variant]:
            pairs = _sampled_pairs(name, sample, args.pairs)
            answers = CachedRequests(llm, cache, stats, "grade", Budget()).ask(
                [grade_request(p, examples) for p in pairs])
            llm_grade = [parse_grade(a.text) if a is not None else None for a in answers]
            checks = [grade(p, shape).grade for p in pairs]
            got = [g for g in llm_grade if g is not None]
            count, cheap = Counter(got), Counter(checks)
            same = sum(g == c for g, c in zip(llm_grade, checks) if g is not None)
            print(f"| {name} | {len(got)} of {len(pairs)} | " + "/".join(str(count.get(g, 0)) for g in (5, 4, 3, 2, 1))
                  + f" | {statistics.mean(got):.2f} | " + "/".join(str(cheap.get(g, 0)) for g in (5, 4, 3, 2, 1))
                  + f" | {same / max(len(got), 1):.0%} |" if got else f"| {name} | 0 | - | - | - | - |")
    finally:
        cache.close()
        llm.close()


def refine(args: argparse.Namespace) -> None:
    """The packaged model's refine pass over a seeded sample of each variant's pairs: what a rewrite changes (answer
    words, pairs pointing at their passage, the checks' grades, copies of the examples it was shown)."""
    from dataclasses import replace

    from equal.config import LocalExtractionConfig
    from equal.corpus import read_reference
    from equal.extraction.task import choose_examples
    from equal.filters import NgramIndex
    from equal.llm.cache import ResponseCache
    from equal.quality import ReferenceShape, grade
    from equal.records import PairGrade, Provenance, QAPair
    from equal.run.budget import Budget
    from equal.run.builders import build_llm
    from equal.run.quality import CachedRequests, refined
    from equal.stats import Stats

    reward = read_reference(DATA / args.reference_set / "reward.jsonl", min_examples=1)
    shape, examples = ReferenceShape.of(reward), choose_examples(reward, 3, seed=0)
    index = NgramIndex(t for p in reward for t in (p.question, p.answer))
    sample = set(sample_ids(_rows()))
    stats = Stats()
    llm = build_llm(LocalExtractionConfig(n_ctx=4096, n_threads=args.threads), stats, 0)
    cache = ResponseCache(WORK / "cache" / "responses.sqlite")
    print("| variant | pairs | rewritten | copies removed | answer words before/after (median) | "
          "pointing before/after | checks' grade 5 before/after |")
    print("|---|---|---|---|---|---|---|")
    try:
        for name in args.variant:
            pairs = [replace(p, provenance=Provenance(p.document_id, 0, 0, 0.0, "bandit", grade=PairGrade(5)))
                     for p in _sampled_pairs(name, sample, args.pairs)]
            removed: list[Any] = []
            out, rewritten = refined(pairs, CachedRequests(llm, cache, stats, "refine", Budget()), examples,
                                     min_grade=1, max_tokens=MAX_TOKENS, shape=shape, protected=index,
                                     removed=removed)
            before, after = [pairs[i] for i in rewritten], [out[i] for i in rewritten]

            def words(ps: list[QAPair]) -> str:
                return f"{statistics.median(len(p.answer.split()) for p in ps):.0f}" if ps else "-"

            def share(ps: list[QAPair], flag: str) -> str:
                return f"{sum(flag in grade(p, shape).flags for p in ps) / max(len(ps), 1):.0%}"

            def fives(ps: list[QAPair]) -> str:
                return f"{sum(grade(p, shape).grade == 5 for p in ps) / max(len(ps), 1):.0%}"
            print(f"| {name} | {len(pairs)} | {len(rewritten)} | {len(removed)} | {words(before)}/{words(after)} | "
                  f"{share(before, 'points_at_passage')}/{share(after, 'points_at_passage')} | "
                  f"{fives(before)}/{fives(after)} |")
            for i in rewritten[:2]:
                print(f"  before: {pairs[i].question[:100]!r} -> {pairs[i].answer[:100]!r}")
                print(f"  after:  {out[i].question[:100]!r} -> {out[i].answer[:160]!r}")
    finally:
        cache.close()
        llm.close()


def cells(args: argparse.Namespace) -> None:
    """The downstream cells of the new pairs on the strategies' own selections (5%, seed 0), beside the old ones.

    Writes ``runs/prompts-downstream/``: ``results.jsonl`` and ``downstream-cells.jsonl.gz`` with, for each
    strategy, its bench cell (the old pairs) and a cell named ``<strategy>, <variant>`` holding the new pairs of
    the same passages (decontaminated as the bench does); the old cells' downstream rows and the base model's are
    copied too, so ``equal bench-downstream data/bench --out runs/prompts-downstream`` trains only the new cells
    and tables them beside the old.
    """
    from dataclasses import replace

    import numpy as np

    from equal.bench.downstream import CELLS_FILE, Cell, TrainingPair, read_cells
    from equal.bench.schema import read_results
    from equal.codec import to_json
    from equal.config import EmbeddingConfig
    from equal.corpus import read_reference
    from equal.embedding import EmbeddingCache, embed_cached
    from equal.filters import NgramIndex
    from equal.records import QAPair
    from equal.reward import ot_distance
    from equal.run.builders import build_embedder

    bench, out = ROOT / "runs" / "bench", ROOT / "runs" / "prompts-downstream"
    out.mkdir(parents=True, exist_ok=True)
    new = read_variant(args.variant)
    reward = read_reference(DATA / args.reference_set / "reward.jsonl", min_examples=1)
    heldout = read_reference(DATA / args.reference_set / "heldout.jsonl", min_examples=1)
    index = NgramIndex(t for p in reward for t in (p.question, p.answer))
    embedder = build_embedder(EmbeddingConfig(model="minilm"))
    cache = EmbeddingCache(bench / "cache" / "embeddings.sqlite")
    target = embed_cached(embedder, [p.as_text() for p in heldout], cache)
    results, old_cells = read_results(bench / "results.jsonl"), read_cells(bench / CELLS_FILE)
    lines, cell_lines = [], []
    for strategy in args.strategy or ["EQUAL", "avg-sim top-k"]:
        old = next(r for r in results if (r.reference_set, r.strategy, r.budget, r.seed)
                   == (args.reference_set, strategy, 0.05, 0))
        ids = pick_ids(args.reference_set, [strategy])
        missing = [i for i in ids if i not in new]
        if missing:
            raise SystemExit(f"{strategy}: {len(missing)} of its {len(ids)} passages are not in {args.variant} yet; "
                             "run the extract step with --passages picks first")
        pairs = [QAPair(p["question"], p["answer"], document_id=i) for i in ids for p in new[i]["qa_pairs"]]
        pairs = [p for p in pairs if not index.copies(p)]
        vectors = embed_cached(embedder, [p.as_text() for p in pairs], cache)
        name = f"{strategy}, {args.variant}"
        result = replace(old, strategy=name, pairs=len(pairs), tokens=sum(new[i]["tokens"] for i in ids),
                         ot_heldout=float(ot_distance(np.asarray(vectors), target).value) if pairs else float("nan"))
        cell = Cell(args.reference_set, name, 0.05, 0, result.ot_heldout,
                    [TrainingPair(p.question, p.answer, p.document_id) for p in pairs])
        lines += [json.dumps(old.to_json()), json.dumps(result.to_json())]
        cell_lines += [json.dumps(to_json(c)) for c in old_cells if c.key == old.key] + [json.dumps(to_json(cell))]
        print(f"{strategy}: {len(ids)} passages; old {old.pairs} pairs, OT {old.ot_heldout:.3f}; "
              f"{args.variant} {len(pairs)} pairs, OT {result.ot_heldout:.3f}")
    cache.close()
    (out / "results.jsonl").write_text("".join(line + "\n" for line in lines))
    with gzip.open(out / CELLS_FILE, "wt") as f:
        f.write("".join(line + "\n" for line in cell_lines))
    rows = [line for line in (bench / "downstream.jsonl").read_text().splitlines() if line.strip()]
    keep = [line for line in rows if (json.loads(line)["reference_set"] == args.reference_set
                                      and json.loads(line)["budget"] in (0.0, 0.05) and json.loads(line)["seed"] == 0)]
    if not (out / "downstream.jsonl").exists():
        (out / "downstream.jsonl").write_text("".join(line + "\n" for line in keep))
    print(f"-> {out}: {len(lines)} results, {len(cell_lines)} cells, {len(keep)} downstream rows copied")


def save(args: argparse.Namespace) -> None:
    SAVED.mkdir(parents=True, exist_ok=True)
    for path in sorted(WORK.glob("*.jsonl")):
        with gzip.GzipFile(SAVED / (path.name + ".gz"), "wb", mtime=0) as f:
            f.write(path.read_bytes())
        print(f"{path} -> {SAVED / (path.name + '.gz')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    e = sub.add_parser("extract")
    e.add_argument("--variant", required=True)
    e.add_argument("--reference-set", required=True)
    e.add_argument("--examples", type=int, default=0, help="reward examples shown in the prompt")
    e.add_argument("--description", default="", help="a sentence naming the task")
    e.add_argument("--passages", choices=["sample", "picks"], default="sample")
    e.add_argument("--strategy", action="append", help="strategies whose picks to extract (default: five)")
    e.add_argument("--threads", type=int, default=1)
    e.set_defaults(run=extract)
    s = sub.add_parser("stats")
    s.add_argument("--reference-set", required=True)
    s.add_argument("--variant", action="append", required=True)
    s.add_argument("--passages", choices=["sample", "all"], default="sample")
    s.set_defaults(run=stats)
    g = sub.add_parser("grades")
    g.add_argument("--reference-set", required=True)
    g.add_argument("--variant", action="append", required=True)
    g.add_argument("--pairs", type=int, default=60, help="pairs graded per variant (seeded sample)")
    g.add_argument("--threads", type=int, default=2)
    g.set_defaults(run=llm_grades)
    r = sub.add_parser("refine")
    r.add_argument("--reference-set", required=True)
    r.add_argument("--variant", action="append", required=True)
    r.add_argument("--pairs", type=int, default=20, help="pairs rewritten per variant (seeded sample)")
    r.add_argument("--threads", type=int, default=2)
    r.set_defaults(run=refine)
    c = sub.add_parser("cells")
    c.add_argument("--reference-set", required=True)
    c.add_argument("--variant", required=True)
    c.add_argument("--strategy", action="append", help="strategies whose selections to train on (default: two)")
    c.set_defaults(run=cells)
    v = sub.add_parser("save")
    v.set_defaults(run=save)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

"""Finish the benchmark's extraction on a GPU: the same GGUF model, prompts and greedy decoding, 100x faster.

On 2 CPU cores llama.cpp needs about 10 s a passage, so the 3,098 passages of
``equal make-bench`` take a working day. This script moves only the generation
to a GPU machine, in three steps:

1. ``prepare`` (here, with llama-cpp-python): every passage not yet in the
   partial output, plus ``--overlap`` passages already extracted on the CPU, is
   turned into the exact token ids llama.cpp would see (the extraction task's
   messages rendered with the GGUF's own chat template, tokenized by llama.cpp).
2. ``generate`` (on the GPU machine; needs only torch, transformers and gguf):
   transformers loads the same GGUF (dequantized, float32) and decodes greedily
   with llama.cpp's repetition penalty (1.15 over the last 64 tokens), stopping
   at ``<|im_end|>`` or ``<|endoftext|>`` within llama.cpp's 2,048-token context.
   It returns token ids only.
3. ``merge`` (here): llama.cpp detokenizes, equal's parser reads the pairs, and
   every passage is written as ``equal extract`` writes it, marked
   ``"extracted_with": "transformers-gpu"``, in corpus order. Passages the GPU
   did not reach are taken from CPU extractions (``--cpu``); passages in both
   measure how far the GPU pairs are from the CPU ones.

What differs from a CPU run: float32 arithmetic on dequantized weights instead
of llama.cpp's quantized kernels, and no JSON-schema grammar (transformers has
none); the parser salvages what it can, as for any backend.

    python benchmarks/extract_on_gpu.py prepare --out data/bench/gpu
    python benchmarks/extract_on_gpu.py generate --prompts prompts.jsonl --model M.gguf --out outputs.jsonl
    python benchmarks/extract_on_gpu.py merge --outputs outputs.jsonl --out data/bench/extracted-gpu.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

N_CTX = 2048  # the local backend's extraction.n_ctx
PENALTY, PENALTY_LAST_N = 1.15, 64  # LlamaCppLLM's repeat_penalty; llama-cpp-python's last_n_tokens_size


def _documents(corpus: Path) -> list:
    from equal import load_config
    from equal.corpus import read_documents

    cfg = load_config(None, {"corpus.path": str(corpus), "corpus.id_field": "id", "corpus.label_field": "source"})
    return list(read_documents(cfg.corpus.path, text_field=cfg.corpus.text_field, id_field="id",
                               fmt=cfg.corpus.format, min_chars=cfg.corpus.min_chars,
                               max_document_chars=cfg.corpus.max_document_chars, keep_fields=("source",),
                               max_passage_chars=cfg.corpus.max_passage_chars))


def _vocab():
    """llama.cpp's tokenizer of the packaged model (vocabulary only, no weights)."""
    from llama_cpp import Llama

    from equal.llm.assets import default_model_path

    return Llama(model_path=str(default_model_path()), vocab_only=True, verbose=False)


def prepare(args: argparse.Namespace) -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from equal.extraction.task import ExtractionTask

    documents = _documents(args.corpus)
    done = [json.loads(line)["id"] for line in args.partial.read_text().splitlines() if line.strip()] \
        if args.partial.exists() else []
    done_set = set(done)
    overlap = done_set if args.all else set(done[:args.overlap])
    chosen = [d for d in documents if d.id not in done_set or d.id in overlap]
    vocab = _vocab()
    # llama.cpp's JSON grammar makes the answer start with "{"; the GPU run imposes that on the first token
    first = [t for t in range(vocab.n_vocab())
             if vocab.detokenize([t]).decode("utf-8", errors="replace").lstrip().startswith("{")]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "first_tokens.json").write_text(json.dumps(first))
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
        vocab.metadata["tokenizer.chat_template"])
    task = ExtractionTask()
    with (args.out / "prompts.jsonl").open("w") as f:
        for doc in chosen:
            request = task.format_input(doc)
            prompt = template.render(messages=list(request.messages), add_generation_prompt=True,
                                     bos_token="", eos_token="<|endoftext|>")
            ids = vocab.tokenize(prompt.encode(), add_bos=False, special=True)
            f.write(json.dumps({"id": doc.id, "input_ids": ids, "overlap": doc.id in overlap,
                                "max_new_tokens": max(0, min(request.max_tokens, N_CTX - len(ids)))}) + "\n")
    print(f"{len(chosen)} prompts ({len(overlap)} already extracted on the CPU) -> {args.out / 'prompts.jsonl'}")


def generate(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

    class LastNRepetitionPenalty(LogitsProcessor):
        """llama.cpp's repeat penalty: tokens among the last n of the context are penalised once each."""

        def __init__(self, first_allowed: torch.Tensor) -> None:
            self.first_allowed = first_allowed  # tokens that may open the answer
            self.prompt_width = 0  # set per batch: the first generation step sees exactly this many tokens

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            window = input_ids[:, -PENALTY_LAST_N:]
            picked = torch.gather(scores, 1, window)
            picked = torch.where(picked > 0, picked / PENALTY, picked * PENALTY)
            scores = scores.scatter(1, window, picked)
            if input_ids.shape[1] == self.prompt_width:  # first step: only tokens that open a JSON object
                scores = scores.masked_fill(~self.first_allowed, float("-inf"))
            return scores

    started = time.time()
    model = AutoModelForCausalLM.from_pretrained(str(args.model.parent), gguf_file=args.model.name,
                                                 dtype=torch.float32).to(args.device).eval()
    print(f"model loaded in {time.time() - started:.0f}s", flush=True)
    rows = [json.loads(line) for line in args.prompts.read_text().splitlines() if line.strip()]
    finished = {json.loads(line)["id"] for line in args.out.read_text().splitlines()} if args.out.exists() else set()
    rows = sorted((r for r in rows if r["id"] not in finished), key=lambda r: len(r["input_ids"]))
    allowed = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    allowed[json.loads(args.first_tokens.read_text())] = True
    penalty = LastNRepetitionPenalty(allowed.to(args.device))
    stop = [151645, 151643]  # <|im_end|>, <|endoftext|>
    pad = 151643
    with args.out.open("a") as f:  # resumable: a rerun skips the passages already written
        for start in range(0, len(rows), args.batch_size):
            batch = rows[start:start + args.batch_size]
            width = max(len(r["input_ids"]) for r in batch)
            penalty.prompt_width = width
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, r in enumerate(batch):  # left padding, so every prompt ends where generation starts
                ids[i, width - len(r["input_ids"]):] = torch.tensor(r["input_ids"])
                mask[i, width - len(r["input_ids"]):] = 1
            with torch.no_grad():
                out = model.generate(input_ids=ids.to(args.device), attention_mask=mask.to(args.device),
                                     max_new_tokens=max(r["max_new_tokens"] for r in batch), do_sample=False,
                                     logits_processor=LogitsProcessorList([penalty]),
                                     eos_token_id=stop, pad_token_id=pad)
            for i, r in enumerate(batch):
                new = out[i, width:].tolist()
                cut = next((j for j, t in enumerate(new) if t in stop), None)
                tokens = new[:cut] if cut is not None else new
                finish = "stop" if cut is not None and cut < r["max_new_tokens"] else "length"
                tokens = tokens[:r["max_new_tokens"]]
                f.write(json.dumps({"id": r["id"], "output_ids": tokens, "tokens_in": len(r["input_ids"]),
                                    "finish_reason": finish}) + "\n")
            f.flush()
            print(f"{start + len(batch)}/{len(rows)} in {time.time() - started:.0f}s", flush=True)


def merge(args: argparse.Namespace) -> None:
    from equal.extraction.task import ExtractionTask
    from equal.run.extract_all import passage_row

    documents = _documents(args.corpus)
    outputs = {r["id"]: r for r in map(json.loads, args.outputs.read_text().splitlines())}
    cpu = {r["id"]: r for path in args.cpu if path.exists() for r in map(json.loads, path.read_text().splitlines())}
    vocab, task = _vocab(), ExtractionTask()
    rows, agreement = [], []
    for doc in documents:
        out = outputs.get(doc.id)
        if out is None:
            if doc.id in cpu:
                rows.append(json.dumps(cpu[doc.id], ensure_ascii=False))
            continue
        text = vocab.detokenize(out["output_ids"]).decode("utf-8", errors="replace")
        row = passage_row(doc, task.format_output(doc, text)[0], out["tokens_in"] + len(out["output_ids"])).to_json()
        if doc.id in cpu:
            before, pairs = cpu[doc.id]["qa_pairs"], row["qa_pairs"]
            agreement.append((len(before), len(pairs), before == pairs,
                              len({p["question"] for p in before} & {p["question"] for p in pairs})))
        rows.append(json.dumps({**row, "extracted_with": "transformers-gpu"}, ensure_ascii=False))
    target = args.out if len(rows) == len(documents) else args.out.with_name(args.out.name + ".partial")
    target.write_text("".join(row + "\n" for row in rows))
    print(f"{len(rows)} of {len(documents)} passages -> {target}")
    if agreement:
        n, asked = len(agreement), max(sum(a[0] for a in agreement), 1)
        print(f"against the CPU extraction on {n} passages: identical pairs {sum(a[2] for a in agreement) / n:.1%}; "
              f"pairs per passage CPU {sum(a[0] for a in agreement) / n:.2f}, "
              f"GPU {sum(a[1] for a in agreement) / n:.2f}; "
              f"CPU questions asked word for word on the GPU {sum(a[3] for a in agreement) / asked:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--corpus", type=Path, default=Path("data/bench/corpus.jsonl"))
    p.add_argument("--partial", type=Path, default=Path("data/bench/extracted.jsonl.partial"))
    p.add_argument("--overlap", type=int, default=200, help="passages already extracted on the CPU to redo")
    p.add_argument("--all", action="store_true", help="redo every passage (one extraction regime for all)")
    p.add_argument("--out", type=Path, default=Path("data/bench/gpu"))
    g = sub.add_parser("generate")
    g.add_argument("--prompts", type=Path, required=True)
    g.add_argument("--model", type=Path, required=True)
    g.add_argument("--first-tokens", type=Path, required=True, help="first_tokens.json from prepare")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--device", default="cuda")
    m = sub.add_parser("merge")
    m.add_argument("--corpus", type=Path, default=Path("data/bench/corpus.jsonl"))
    m.add_argument("--cpu", type=Path, nargs="+", default=[Path("data/bench/extracted.jsonl.partial")],
                   help="llama.cpp extractions (equal extract) used where the GPU gave none, and compared where it did")
    m.add_argument("--outputs", type=Path, required=True)
    m.add_argument("--out", type=Path, default=Path("data/bench/extracted-gpu.jsonl"))
    args = parser.parse_args()
    {"prepare": prepare, "generate": generate, "merge": merge}[args.step](args)


if __name__ == "__main__":
    main()

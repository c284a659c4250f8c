"""The downstream measurement on a tiny randomly initialised Qwen2: the same code path as the real model.

The tokenizer is a small byte-level BPE trained here with the ChatML template the
packaged model uses (converting the packaged GGUF's tokenizer needs the ``gguf``
package and takes a while); the model is a 2-layer Qwen2 of width 64.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from equal.bench import downstream  # noqa: E402
from equal.bench.downstream import Example, TrainConfig  # noqa: E402

CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

TRAIN = [Example(f"What is the colour of item {i}?", f"Item {i} is {c} and weighs {i % 5} kilograms.")
         for i, c in zip(range(16), ["red", "blue", "green", "yellow"] * 4, strict=True)]
HELDOUT = [Example(f"How heavy is box {i}?", f"Box {i} weighs {i} grams, the colour is {c}.")
           for i, c in zip(range(6), ["red", "blue", "green"] * 2, strict=True)]
FAST = TrainConfig(max_steps=4, learning_rate=3e-3, batch_size=4, max_length=64, warmup_ratio=0.0,
                   eval_batch_size=4)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a tiny Qwen2 and its tokenizer, built once per test session."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    text = [f"{e.question} {e.answer}" for e in TRAIN + HELDOUT] + ["user assistant system"]
    bpe.train_from_iterator(text, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHATML
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=256, tie_word_embeddings=True))
    folder = tmp_path_factory.mktemp("tiny-qwen2")
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def _cell(strategy: str, budget: float, pairs: list[Example], seed: int = 0) -> dict:
    return {"reference_set": "toy", "strategy": strategy, "budget": budget, "seed": seed, "ot_heldout": budget,
            "pairs": [{"question": e.question, "answer": e.answer, "document_id": "d"} for e in pairs]}


def test_labels_cover_the_answer_only(tiny_model: Path) -> None:
    tok = downstream.load_tokenizer(tiny_model)
    enc = downstream.encode(tok, TRAIN[0], 256)
    assert enc is not None
    answer = [t for t, label in zip(enc["input_ids"], enc["labels"], strict=True) if label != -100]
    assert tok.decode(answer) == TRAIN[0].answer + "<|im_end|>"
    assert TRAIN[0].question in tok.decode(enc["input_ids"][:len(enc["input_ids"]) - len(answer)])


def test_training_loss_falls_on_the_training_set(tiny_model: Path, tmp_path: Path) -> None:
    model, tok = downstream.load_model(tiny_model, "cpu"), downstream.load_tokenizer(tiny_model)
    config = TrainConfig(max_steps=30, learning_rate=3e-3, batch_size=4, max_length=64, warmup_ratio=0.0)
    before = downstream.heldout_nll(model, tok, TRAIN, config)["nll"]
    trained = downstream.fine_tune(model, tok, TRAIN, config, seed=0, work_dir=tmp_path)
    after = downstream.heldout_nll(model, tok, TRAIN, config)["nll"]
    assert trained["steps"] == 30 and trained["skipped"] == 0 and trained["train_examples"] == len(TRAIN)
    assert after < before - 1.0, (before, after)


def test_a_non_finite_batch_is_skipped(tiny_model: Path, tmp_path: Path) -> None:
    model, tok = downstream.load_model(tiny_model, "cpu"), downstream.load_tokenizer(tiny_model)
    with torch.no_grad():
        model.model.norm.weight[0] = math.nan  # every loss is NaN from here on
    embeddings = model.model.embed_tokens.weight.detach().clone()
    trained = downstream.fine_tune(model, tok, TRAIN, FAST, seed=0, work_dir=tmp_path)
    assert trained["skipped"] == trained["steps"] == FAST.max_steps
    assert torch.equal(model.model.embed_tokens.weight, embeddings)  # no NaN update reached the weights


def test_heldout_examples_are_never_trained_on(tiny_model: Path, tmp_path: Path) -> None:
    cells = [_cell("leaky", 0.1, TRAIN[:4] + HELDOUT[:1])]
    with pytest.raises(ValueError, match="held-out"):
        downstream.run_downstream(cells, {"toy": HELDOUT}, tmp_path, model=tiny_model, config=FAST, device="cpu")
    assert not (tmp_path / downstream.RESULTS_FILE).exists() or \
        not downstream.read_downstream(tmp_path / downstream.RESULTS_FILE)


def test_nll_is_scored_on_the_heldout_examples_only(tiny_model: Path, tmp_path: Path) -> None:
    runs = []
    for i, extra in enumerate([TRAIN[8], Example("Something else entirely?", "A different training answer.")]):
        cells = [_cell("s", 0.1, TRAIN[:4] + [extra])]
        runs.append(downstream.run_downstream(cells, {"toy": HELDOUT}, tmp_path / str(i), model=tiny_model,
                                              config=FAST, device="cpu", log=lambda _: None))
    for rows in runs:
        assert len(rows) == 2  # the base model and the cell
        for row in rows:
            assert row["heldout_digest"] == downstream.digest(HELDOUT)
            assert row["heldout_examples"] == len(HELDOUT) and math.isfinite(row["nll_heldout"])
    assert runs[0][0]["heldout_tokens"] == runs[1][0]["heldout_tokens"]  # same tokens scored, whatever trained


def test_a_killed_run_resumes_without_retraining(tiny_model: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cells = [_cell(s, b, TRAIN[:6], seed) for s in ("a", "b") for b in (0.05, 0.1) for seed in (0,)]
    trainings: list[str] = []
    real = downstream.fine_tune

    def killed_after_two(*args, **kwargs):
        if len(trainings) == 2:
            raise KeyboardInterrupt
        trainings.append("x")
        return real(*args, **kwargs)

    monkeypatch.setattr(downstream, "fine_tune", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        downstream.run_downstream(cells, {"toy": HELDOUT}, tmp_path, model=tiny_model, config=FAST, device="cpu",
                                  log=lambda _: None)
    assert len(downstream.read_downstream(tmp_path / downstream.RESULTS_FILE)) == 3  # base + 2 cells

    trainings.clear()
    monkeypatch.setattr(downstream, "fine_tune", lambda *a, **k: (trainings.append("x"), real(*a, **k))[1])
    rows = downstream.run_downstream(cells, {"toy": HELDOUT}, tmp_path, model=tiny_model, config=FAST, device="cpu",
                                     log=lambda _: None)
    assert len(trainings) == 2  # only the two cells the killed run had not finished
    assert len(rows) == 5 and len({(r["strategy"], r["budget"], r["seed"]) for r in rows}) == 5
    again = downstream.run_downstream(cells, {"toy": HELDOUT}, tmp_path, model=tiny_model, config=FAST,
                                      device="cpu", log=lambda _: None)
    assert len(trainings) == 2 and len(again) == 5
    other = TrainConfig(**{**FAST.as_dict(), "learning_rate": 1e-3})  # another recipe is measured anew
    fresh = downstream.run_downstream(cells[:1], {"toy": HELDOUT}, tmp_path, model=tiny_model, config=other,
                                      device="cpu", log=lambda _: None)
    assert len(trainings) == 3 and {r["config_id"] for r in fresh} == {downstream.config_id(str(tiny_model), other)}
    assert all(json.loads(line) for line in (tmp_path / downstream.RESULTS_FILE).read_text().splitlines())


def test_results_md_gets_one_downstream_section(tmp_path: Path) -> None:
    from equal.bench.tables import write_downstream

    common = {"model": "tiny", "config_id": "c1", "hyperparameters": FAST.as_dict(), "device": "cpu",
              "heldout_examples": 6, "heldout_tokens": 90, "skipped": 0}
    rows = [{"reference_set": "toy", "strategy": downstream.BASE, "budget": 0.0, "seed": 0, "ot_heldout": math.nan,
             "nll_heldout": 5.0, "train_pairs": 0, "steps": 0, **common}]
    rows += [{"reference_set": "toy", "strategy": s, "budget": b, "seed": seed, "ot_heldout": ot + seed / 100,
              "nll_heldout": nll + seed / 10, "train_pairs": 10, "steps": 3, **common}
             for s, b, ot, nll in [("EQUAL", 0.05, 0.5, 3.0), ("EQUAL", 0.1, 0.4, 2.5),
                                   ("random documents", 0.05, 0.7, 4.0), ("random documents", 0.1, 0.6, 3.5)]
             for seed in (0, 1)]
    (tmp_path / downstream.RESULTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "results.md").write_text("## Data\n\nthe bench tables\n")
    write_downstream(tmp_path)
    write_downstream(tmp_path)  # a second call replaces the section, keeps the bench tables
    text = (tmp_path / "results.md").read_text()
    assert text.startswith("## Data\n\nthe bench tables\n") and text.count("## Downstream") == 1
    assert "| - | base model (no fine-tuning) | 5.000 |" in text
    assert "| 5% | EQUAL | 3.050 (3.000-3.100) | 10 | 3 |" in text
    assert "- all cells: rho 1.000" in text  # OT and NLL rise together in these rows
    assert (tmp_path / "downstream-nll.png").stat().st_size > 0


def test_the_command_asks_for_the_bench_results_first(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from equal.cli.main import app

    result = CliRunner().invoke(app, ["bench-downstream", str(tmp_path), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "is missing; run `equal bench" in " ".join(result.output.split())

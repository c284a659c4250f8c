"""Connecting to the Ray cluster named in ``executor.address``."""

from __future__ import annotations

import logging
from typing import Any

from equal.errors import ConfigError

logger = logging.getLogger(__name__)


def connect(address: str | None) -> Any:
    """``ray.init`` once per process: ``address`` is ``host:port``, ``ray://host:10001`` or ``auto``;
    ``None`` starts a Ray instance inside this machine. Returns the ``ray`` module."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("executor.kind: ray needs Ray; install equal with the `ray` extra "
                          "(pip install 'equal[ray]'), on the driver and on every node") from exc
    if not ray.is_initialized():
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False if address is None else None, configure_logging=False)
        except ConnectionError as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({exc}); start it with "
                              "`ray start --head` or fix executor.address") from exc
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        logger.info("Ray: %d nodes, %s CPUs", len(nodes), ray.cluster_resources().get("CPU"))
    return ray

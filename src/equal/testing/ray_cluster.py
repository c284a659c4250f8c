"""A real multi-node Ray cluster on 127.0.0.1, for tests and benchmarks: ``ray start --head`` plus worker nodes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_ray_cluster(nodes: int = 2, cpus_per_node: int = 2, join_timeout_s: float = 60) -> Iterator[str]:
    """Start a head node and ``nodes - 1`` worker nodes on loopback, connect this process, yield the address.

    Everything is stopped (``ray stop --force``) on the way out, even when a node fails to start or join.
    """
    import ray

    ray_cli = str(Path(sys.executable).parent / "ray")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    address = f"127.0.0.1:{_free_port()}"
    common = ["--node-ip-address=127.0.0.1", f"--num-cpus={cpus_per_node}", "--disable-usage-stats"]
    try:
        subprocess.run([ray_cli, "start", "--head", f"--port={address.rsplit(':', 1)[1]}",
                        "--include-dashboard=false", *common], check=True, env=env, capture_output=True, timeout=180)
        for _ in range(nodes - 1):
            subprocess.run([ray_cli, "start", f"--address={address}", *common], check=True, env=env,
                           capture_output=True, timeout=180)
        ray.init(address=address, log_to_driver=False)
        deadline = time.monotonic() + join_timeout_s
        while len([n for n in ray.nodes() if n["Alive"]]) < nodes and time.monotonic() < deadline:
            time.sleep(0.5)
        alive = len([n for n in ray.nodes() if n["Alive"]])
        if alive < nodes:
            raise RuntimeError(f"{nodes - alive} of the {nodes - 1} worker nodes did not join the Ray cluster")
        yield address
    finally:
        ray.shutdown()
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)

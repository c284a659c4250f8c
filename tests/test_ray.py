"""The Ray executor on a real two-node Ray cluster on 127.0.0.1 (`ray start --head` plus a worker node).

The results must equal the local executor's for the same seed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from equal import run
from equal.testing import FakeOpenAIServer

ray = pytest.importorskip("ray")
FIXTURES = Path(__file__).parent / "fixtures"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_address():
    ray_cli = str(Path(sys.executable).parent / "ray")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=2", "--disable-usage-stats"]
    subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                   check=True, env=env, capture_output=True, timeout=180)
    try:
        subprocess.run([ray_cli, "start", f"--address={address}", *common], check=True, env=env,
                       capture_output=True, timeout=180)
        ray.init(address=address, log_to_driver=False)
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2, "the worker node did not join"
        yield address
    finally:
        ray.shutdown()
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_pipeline_on_ray_equals_the_local_executor(ray_address, replay_config, tmp_path):
    with FakeOpenAIServer() as server:
        common = {"extraction.extractor": "openai", "extraction.model": "fake", "extraction.concurrency": 4,
                  "extraction.base_url": server.base_url, "budget.fraction": 0.3}
        local = run(replay_config(**common, **{"output.dir": str(tmp_path / "local")}))
        sent_locally = server.total_requests
        on_ray = run(replay_config(**common, **{"output.dir": str(tmp_path / "ray"), "executor.kind": "ray",
                                                "executor.address": ray_address, "executor.cpus_per_worker": 1}))
        assert server.total_requests == 2 * sent_locally  # separate caches: the Ray run paid for its own calls
    assert on_ray.dataset_path.read_text() == local.dataset_path.read_text()
    assert on_ray.summary.documents_extracted == local.summary.documents_extracted
    counters = on_ray.counters
    assert counters["llm_calls"] == local.counters["llm_calls"]  # workers' counters reach the driver
    nodes = [k for k in counters if k.startswith("ray_llm_chunks_on_node:")]
    assert len(nodes) == 2, counters  # extraction actors ran on both nodes


def test_minilm_embeddings_on_ray_data_equal_local(ray_address):
    from functools import partial

    from equal.config import EmbeddingConfig, ExecutorConfig
    from equal.run.builders import build_embedder, corpus_embedder

    texts = [json.loads(line)["text"] for line in (FIXTURES / "mini_corpus.jsonl").read_text().splitlines()]
    config = EmbeddingConfig(model="minilm", device="cpu")
    local = build_embedder(config)
    remote = corpus_embedder(partial(build_embedder, config), local.name,
                             ExecutorConfig(kind="ray", address=ray_address, embed_workers=2, embed_batch_size=4))
    assert remote.name == local.name  # same vectors, so caches are shared
    np.testing.assert_allclose(remote.encode(texts), local.encode(texts), atol=1e-5)

"""The container image is configured by the official Kafka image's environment variables: the example
compose file's environment, given to a kbroker process, gives a broker that works with it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _compose_environment() -> dict[str, str]:
    env = {}
    in_env = False
    for line in (ROOT / "docker-compose.example.yml").read_text().splitlines():
        if line.strip() == "environment:":
            in_env = True
            continue
        if in_env:
            m = re.match(r"\s+([A-Z0-9_]+):\s*(.*)$", line)
            if not m:
                break
            env[m.group(1)] = m.group(2)
    return env


def test_compose_environment_configures_kbroker(tmp_path):
    env = dict(os.environ, **_compose_environment())
    # The compose file binds 0.0.0.0:9092; for a test, take loopback and a free port instead.
    env["KAFKA_LISTENERS"] = "PLAINTEXT://127.0.0.1:0"
    env["KAFKA_ADVERTISED_LISTENERS"] = "PLAINTEXT://localhost:0"
    env["KAFKA_LOG_DIRS"] = str(tmp_path / "data")
    proc = subprocess.Popen([sys.executable, "-m", "kbroker", "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("kbroker listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        from kbroker.client import BlockingClient
        from kbroker.wire.messages import metadata as M

        with BlockingClient(f"127.0.0.1:{port}") as admin:
            resp = admin.send(3, M.MetadataRequest(topics=[M.MetadataRequest.MetadataRequestTopic(name="t")],
                                                         allow_auto_topic_creation=True))
            assert len(resp.topics[0].partitions) == 3  # KAFKA_NUM_PARTITIONS
            assert (resp.brokers[0].host, resp.brokers[0].port) == ("localhost", port)  # KAFKA_ADVERTISED_LISTENERS
            # a partition's directory is made at its first write
            from kbroker.records import Record, build_batch
            from kbroker.wire.messages import produce as P
            req = P.ProduceRequest(acks=1, timeout_ms=5000, topic_data=[P.ProduceRequest.TopicProduceData(
                name="t", topic_id=resp.topics[0].topic_id, partition_data=[P.ProduceRequest.PartitionProduceData(
                    index=0, records=bytes(build_batch([Record(0, 0, None, b"v")])))])])
            assert admin.send(0, req).responses[0].partition_responses[0].error_code == 0
        assert (tmp_path / "data" / "t-0").is_dir()  # KAFKA_LOG_DIRS
    finally:
        proc.terminate()
        proc.wait(10)
    err = proc.stderr.read()
    assert "unknown setting" not in err, err

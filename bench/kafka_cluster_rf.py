"""Apache Kafka 4.4 itself, replication factor 3 on three brokers against one broker: the cluster section's
produce rows (bench/cluster.py) with Kafka as the broker, so kbroker's "RF 3 / single" ratio (issue 15's aim of
0.5 on this 2-core machine) has the reference beside it.

    python bench/kafka_cluster_rf.py [--runs 3] [--out bench/results/cluster-kafka-4.4]

The single broker is ``RealKafka`` (one KRaft node), the cluster ``RealKafkaCluster(3)`` (three brokers and a
dedicated controller, kbroker/conformance/realkafka.py), both from Maven Central's jars. Each row: a new
one-partition topic (replication factor 3 and ``min.insync.replicas=2`` on the cluster), a full ISR before the
clock starts, the same confluent-kafka producer as cluster.py (bench/client.py ``produce``, acks=all), 1,000,000
x 100 B and 50,000 x 10 KiB; medians of the runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import workloads  # noqa: E402
from cluster import _create_topic  # noqa: E402

ROWS = [(100, 1_000_000), (10240, 50_000)]


def _full_isr(bootstrap: str, topic: str, replicas: int, timeout_s: float = 60.0) -> bool:
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        partition = admin.list_topics(topic, timeout=10).topics[topic].partitions.get(0)
        if partition is not None and len(partition.isrs) == replicas:
            return True
        time.sleep(0.2)
    return False


def _rows(bootstrap: str, rf: int, runs: int, log_dir: Path) -> dict:
    out = {}
    for size, count in ROWS:
        for _ in range(runs):
            topic = f"kafka-rf-{uuid.uuid4().hex[:8]}"
            _create_topic(bootstrap, topic, rf)
            if not _full_isr(bootstrap, topic, rf):
                raise RuntimeError(f"{topic}: no full ISR within 60 s")
            spec = {"bootstrap": bootstrap, "topic": topic, "count": count, "size": size, "acks": "all",
                    "deadline_s": 30 + count / (2000 if size == 100 else 200)}
            result = workloads.client("produce", spec, log_dir)
            out.setdefault(str(size), []).append(result.get("msgs_per_s"))
            print(f"RF {rf}, {count:,} x {size} B: {result.get('msgs_per_s') or result}", flush=True)
    return out


def main() -> None:
    from kbroker.conformance.realkafka import RealKafka, RealKafkaCluster
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(BENCH_DIR / "results" / "cluster-kafka-4.4"))
    args = ap.parse_args()
    log_dir = Path(args.out).parent
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    with RealKafka() as single:
        one = _rows(single.bootstrap, 1, args.runs, log_dir)
    with RealKafkaCluster(3) as cluster:
        three = _rows(cluster.bootstrap, 3, args.runs, log_dir)
    result = {"started": started, "runs": {"single": one, "rf3": three}, "medians": {}}
    for size in one:
        s, r = statistics.median(one[size]), statistics.median(three[size])
        result["medians"][size] = {"single": s, "rf3": r, "ratio": r / s}
        print(f"{size} B: single {s:,.0f} msg/s, RF 3 {r:,.0f} msg/s, RF 3 / single {r / s:.2f}x")
    Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

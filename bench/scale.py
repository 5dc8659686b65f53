"""How cost grows with the number of topics (issue 17, "How cost grows with the work"), kbroker and
Apache Kafka 4.4 side by side.

    python bench/scale.py [--topics 100,1000,5000] [--peers kbroker,kafka-4] [--out bench/results/scale.json]
                          [--source DIR] [--skip produce,restart]

For each broker (bench/peers.py: kbroker with segment storage, Kafka 4.4 from Maven Central's jars) and each
count N, on a fresh instance:

- create: N single-partition topics in CreateTopics requests of at most 1,000 topics, one after the other,
  timed until the last answer (kbroker's own client, ``kbroker.client``); ``until_leaders_s`` also waits
  until Metadata names every topic with a leader (Kafka answers before its partitions have leaders);
- metadata: the median over 20 Metadata v12 requests for all topics, request written to answer read
  (not decoded), after one warm-up;
- produce: 200,000 x 100 B with confluent-kafka (acks=1, linger.ms=5, batch.size 1 MiB, the settings of
  the main benchmark's produce rows), round-robin over the N topics, timed until flush() returns;
- restart: kill -9, then the time from starting the broker again on the same data dir to a Metadata
  answer naming all N topics, each with a leader.

``run.py`` runs the same rows as its ``scale`` section (with every peer that has them) and prints each
row's kbroker/Kafka ratio. ``--source`` runs kbroker from another copy of the source tree (to measure a
revision side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

sys.path.insert(0, str(BENCH_DIR))

import peers  # noqa: E402
from kbroker.client import BlockingClient, BlockingConnection  # noqa: E402
from kbroker.client.aio import metadata_request  # noqa: E402

HOST = peers.HOST
BATCH = 1000
PRODUCE_COUNT, PRODUCE_SIZE = 200_000, 100


class SourceKBroker(peers.KBroker):
    """kbroker run from another copy of the source tree (``--source``), to put two revisions side by side."""

    def __init__(self, workdir: Path, source: Path):
        super().__init__(workdir, "segment")
        self.source = source

    def env(self):
        return dict(super().env(), PYTHONPATH=str(self.source))

    def cwd(self):
        return str(self.source)


def names_all(n: int):
    """A readiness probe: Metadata for all topics names at least ``n`` of them, each with a leader."""
    def ready(port: int) -> bool:
        try:
            with BlockingConnection(HOST, port, timeout_s=60) as c:
                md = c.request(3, 12, metadata_request(12, None))
        except (OSError, ConnectionError):
            return False
        return len(md.topics) >= n and all(p.leader_id >= 0 for t in md.topics for p in t.partitions)
    return ready


def create(b: peers.Peer, n: int) -> dict:
    names = [f"t{i:05d}" for i in range(n)]
    batches = []
    with BlockingClient(b.bootstrap, timeout_s=600) as c:
        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            t1 = time.perf_counter()
            c.create_topics({name: {"partitions": 1} for name in names[i:i + BATCH]}, timeout_ms=600_000)
            batches.append(round(time.perf_counter() - t1, 3))
        dt = time.perf_counter() - t0
    return {"seconds": round(dt, 3), "batch_seconds": batches, "names": names}


def metadata_latency(b: peers.Peer, n: int, rounds: int = 20) -> dict:
    with BlockingConnection(HOST, b.port, timeout_s=60) as c:
        md = c.request(3, 12, metadata_request(12, None))
        assert len(md.topics) >= n, (len(md.topics), n)
        times = []
        for _ in range(rounds):
            frame = c.frame(3, 12, metadata_request(12, None))
            t0 = time.perf_counter()
            c.send_bytes(frame)
            answer = c.read_frame()
            times.append(time.perf_counter() - t0)
            c.protocol.in_flight.popleft()
            assert answer
    return {"median_ms": round(statistics.median(times) * 1000, 3), "answer_bytes": len(answer)}


def produce(b: peers.Peer, names: list[str]) -> dict:
    from confluent_kafka import Producer
    failures = []
    p = Producer({"bootstrap.servers": b.bootstrap, "log_level": 3, "acks": "1", "linger.ms": 5,
                  "batch.size": 1 << 20, "queue.buffering.max.messages": PRODUCE_COUNT,
                  "queue.buffering.max.kbytes": 2097151, "delivery.report.only.error": True,
                  "on_delivery": lambda err, _m: err and failures.append(str(err))})
    p.list_topics(timeout=60)
    payload = os.urandom(PRODUCE_SIZE)
    n = len(names)
    t0 = time.perf_counter()
    for i in range(PRODUCE_COUNT):
        try:
            p.produce(names[i % n], payload, partition=0)
        except BufferError:
            p.poll(0.01)
            p.produce(names[i % n], payload, partition=0)
    left = p.flush(300)
    dt = time.perf_counter() - t0
    return {"msgs_per_s": round(PRODUCE_COUNT / dt), "seconds": round(dt, 3), "failed": len(failures),
            "undelivered": left}


def run(n: int, peer: peers.Peer, skip: set[str], say=print) -> dict:
    """The rows for ``n`` topics on a fresh instance of ``peer``."""
    out: dict = {"topics": n}
    try:
        peer.start(timeout_s=120)
        c = create(peer, n)
        names = c.pop("names")
        out["create"] = c
        # Kafka answers CreateTopics before every new partition has a leader; the rows below need them.
        waited_from, ready = time.perf_counter(), names_all(n)
        while not ready(peer.port) and time.perf_counter() - waited_from < 600:
            time.sleep(0.05)
        out["create"]["until_leaders_s"] = round(c["seconds"] + time.perf_counter() - waited_from, 3)
        say(f"  {peer.name}, {n} topics: create {c['seconds']} s")
        out["metadata"] = metadata_latency(peer, n)
        say(f"  {peer.name}, {n} topics: metadata {out['metadata']['median_ms']} ms")
        if "produce" not in skip:
            out["produce"] = produce(peer, names)
            say(f"  {peer.name}, {n} topics: produce {out['produce']['msgs_per_s']} msg/s")
        if "restart" not in skip:
            out["restart_s"] = round(peer.restart_after_kill9(names_all(n)), 3)
            say(f"  {peer.name}, {n} topics: restart after kill -9 {out['restart_s']} s")
    finally:
        peer.stop()
    return out


# The rows, as run.py's report shows them: (key, label, unit, higher is better, how to read a result row).
ROWS = [
    ("create", "create {n:,} topics (CreateTopics answered)", "s", False, lambda r: r["create"]["seconds"]),
    ("metadata", "Metadata v12, all of {n:,} topics (median)", "ms", False, lambda r: r["metadata"]["median_ms"]),
    ("produce", "produce 200,000 x 100 B round-robin over {n:,} topics", "msg/s", True,
     lambda r: r["produce"]["msgs_per_s"]),
    ("restart", "restart after kill -9 with {n:,} topics, to all named with leaders", "s", False,
     lambda r: r["restart_s"]),
]


def row_values(result: dict) -> dict[str, float]:
    """``scale.<what>.<n>`` -> value, for the rows a result of ``run`` holds."""
    out = {}
    for key, _, _, _, get in ROWS:
        try:
            out[f"scale.{key}.{result['topics']}"] = get(result)
        except KeyError:
            pass
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topics", default="100,1000,5000")
    ap.add_argument("--out", default=str(BENCH_DIR / "results" / "scale.json"))
    ap.add_argument("--peers", default="kbroker,kafka-4", help="kbroker and/or kafka-4 (default both)")
    ap.add_argument("--source", default=None, help="run kbroker from this source tree instead")
    ap.add_argument("--skip", default="", help="comma-separated: produce, restart")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kbroker-scale-"))
    source = Path(args.source).resolve() if args.source else BENCH_DIR.parent
    rev = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "not a git checkout"
    results = {"source": str(source), "revision": rev, "machine": f"{os.cpu_count()} CPUs",
               "load_average_at_start": os.getloadavg(), "rows": []}
    skip = set(filter(None, args.skip.split(",")))
    made = {"kbroker": lambda: SourceKBroker(workdir, source) if args.source else peers.KBroker(workdir, "segment"),
            "kafka-4": lambda: peers.Kafka4(workdir)}
    try:
        for name in filter(None, args.peers.split(",")):
            peer = made[name]()
            peer.install()
            for n in (int(x) for x in args.topics.split(",")):
                results["rows"].append({"peer": name, **run(n, peer, skip)})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

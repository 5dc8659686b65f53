"""Issue 16, topic churn: the p99 latency of a well-behaved producer while another client creates and deletes
50-partition topics in a loop.

    python bench/deletion_churn.py [--runs 3] [--duration 20] [--partitions 50] [--rate 0] [--src DIR]
                                   [--out FILE.json]

One fresh kbroker (segment storage) per run. The producer (confluent-kafka, linger.ms=0, acks=1) sends 500 x
100 B records a second to a one-partition topic and measures each record's send-to-acknowledgement time; the
churn client (kbroker.client, its own process) repeats CreateTopics of one 50-partition topic, DeleteTopics of
it, as fast as it goes or ``--rate`` cycles a second. Reported per run: the producer's p50/p99/max, churn cycles done, and the 1-minute load average at the end
(the machine is shared); and the median of each over the runs. ``--src`` runs the broker from another source
tree (an older commit, for a before/after comparison).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import peers  # noqa: E402

TOPIC = "steady"


def churn(bootstrap: str, stop_at: float, out, partitions: int = 50, rate: float = 0.0) -> None:
    from kbroker.client.blocking import BlockingClient
    cycles = 0
    next_at = time.time()
    with BlockingClient(bootstrap) as c:
        while partitions and time.time() < stop_at:
            name = f"churn-{cycles}"
            c.create_topics({name: {"partitions": partitions}})
            c.delete_topics([name])
            cycles += 1
            if rate:
                next_at += 1.0 / rate
                time.sleep(max(0.0, next_at - time.time()))  # pacing the load, not synchronisation
    out.put(cycles)


def producer(bootstrap: str, start_at: float, stop_at: float, out) -> None:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "1", "log_level": 0})
    latencies: list[float] = []

    def acked(err, sent: float) -> None:
        if err is None and sent >= start_at:
            latencies.append(time.time() - sent)

    payload = b"x" * 100
    next_at = time.time()
    while time.time() < stop_at:
        now = time.time()
        p.produce(TOPIC, payload, partition=0, on_delivery=lambda err, _msg, sent=now: acked(err, sent))
        p.poll(0)
        next_at += 0.002
        delay = next_at - time.time()
        if delay > 0:
            p.poll(delay)
    p.flush(30)
    out.put(sorted(latencies))


def run_once(src: str | None, duration: float, workdir: Path, partitions: int, rate: float) -> dict:
    peer = peers.KBroker(workdir, "segment")
    peer.versions_seen = []
    if src is not None:
        peer.cwd = lambda: src
    peer.start()
    try:
        peer.create_topic(TOPIC, 1)
        q: mp.Queue = mp.Queue()
        warm = time.time() + 2.0
        stop_at = warm + duration
        procs = [mp.Process(target=producer, args=(peer.bootstrap, warm, stop_at, q)),
                 mp.Process(target=churn, args=(peer.bootstrap, stop_at, q, partitions, rate))]
        for pr in procs:
            pr.start()
        results = [q.get(timeout=duration + 120) for _ in procs]
        for pr in procs:
            pr.join()
        lat = next(r for r in results if isinstance(r, list))
        cycles = next(r for r in results if isinstance(r, int))
        load1 = os.getloadavg()[0]
    finally:
        peer.stop()
    n = len(lat)
    return {"records": n, "p50_ms": round(lat[n // 2] * 1000, 2), "p99_ms": round(lat[int(n * 0.99)] * 1000, 2),
            "max_ms": round(lat[-1] * 1000, 2), "churn_cycles": cycles, "load1": round(load1, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--src", default=None, help="source tree to run the broker from (default: this one)")
    ap.add_argument("--partitions", type=int, default=50, help="of each churned topic (0: no churn, a baseline)")
    ap.add_argument("--rate", type=float, default=0.0, help="churn cycles a second (0: as fast as it goes)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="deletion-churn-"))
    runs = []
    for i in range(args.runs):
        r = run_once(args.src, args.duration, workdir, args.partitions, args.rate)
        print(f"run {i + 1}: {r}", flush=True)
        runs.append(r)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"median: {median}")
    if args.out:
        Path(args.out).write_text(json.dumps({"src": args.src or "this tree", "runs": runs, "median": median},
                                             indent=1))


if __name__ == "__main__":
    main()

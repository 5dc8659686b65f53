"""kbroker's and Apache Kafka 4's Fetch answers to the same librdkafka consumer: ``python bench/fetch_compare.py``.

Both brokers run side by side (the one not being measured is paused with SIGSTOP, so it takes no CPU). The
same producer writes the same workload into each; then, in interleaved rounds, one confluent-kafka consumer
per broker and setting reads it all back with ``debug=fetch`` on, and its log is boiled down to what each
Fetch answer gave the client:

- ``answers``: Fetch answers that carried records ("Enqueue N message(s)" lines);
- ``recs/answer``: the median records per answer (librdkafka drops a partial trailing batch, so this is
  whole batches only) and how many answers held fewer than the most common count;
- ``gap ms``: the median time between two such answers while the client keeps fetching (gaps over
  500 ms, which are the pauses, left out): the rate at which the broker fills the client's queue;
- ``pauses``: "Fetch backoff for <fetch.queue.backoff.ms>: Local: Queue full", the times the local queue
  was over queued.min.messages / queued.max.messages.kbytes and fetching stopped.

The debug log slows the client by a few per cent; each round also runs the consumer once without it (the
``msg/s`` without debug column), and then a kafka-python and an aiokafka consumer at their own defaults
(their fetch loops differ from librdkafka's: no queue-full pause, one Fetch in flight per broker, records
decoded in Python), each from assign() to the last record. Prints a Markdown table with the load average
before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import peers  # noqa: E402

ENQUEUE = re.compile(r"^%7\|(\d+\.\d+)\|CONSUME\|.*Enqueue (\d+) message\(s\)")
PAUSE = re.compile(r"Fetch backoff for (\d+)ms: Local: Queue full")

CONSUMER = r"""
import json, sys, time
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
bootstrap, topic, n, conf = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cmp%d" % time.time_ns(), "enable.auto.commit": False,
              **conf})
c.list_topics(topic, timeout=10)
t0 = time.perf_counter()
c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
got = 0
while got < n and time.perf_counter() - t0 < 120:
    for m in c.consume(min(10000, n - got), 0.2):
        got += m.error() is None
dt = time.perf_counter() - t0
c.close()
print(json.dumps({"got": got, "msgs_per_s": got / dt}), flush=True)
"""

KAFKA_PYTHON = r"""
import json, sys, time
from kafka import KafkaConsumer, TopicPartition
bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
c.partitions_for_topic(topic)
tp = TopicPartition(topic, 0)
t0 = time.perf_counter()
c.assign([tp])
c.seek_to_beginning(tp)
got = 0
while got < n and time.perf_counter() - t0 < 120:
    for recs in c.poll(timeout_ms=200, max_records=10000).values():
        got += len(recs)
dt = time.perf_counter() - t0
c.close()
print(json.dumps({"got": got, "msgs_per_s": got / dt}), flush=True)
"""

AIOKAFKA = r"""
import asyncio, json, sys, time
from aiokafka import AIOKafkaConsumer, TopicPartition
bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def main():
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    tp = TopicPartition(topic, 0)
    t0 = time.perf_counter()
    c.assign([tp])
    await c.seek_to_beginning(tp)
    got = 0
    while got < n and time.perf_counter() - t0 < 120:
        for recs in (await c.getmany(timeout_ms=200, max_records=10000)).values():
            got += len(recs)
    dt = time.perf_counter() - t0
    await c.stop()
    print(json.dumps({"got": got, "msgs_per_s": got / dt}), flush=True)

asyncio.run(main())
"""


def summarise(log: str) -> dict:
    times, counts, pauses = [], [], 0
    for line in log.splitlines():
        if m := ENQUEUE.match(line):
            times.append(float(m.group(1)))
            counts.append(int(m.group(2)))
        elif PAUSE.search(line):
            pauses += 1
    gaps = [(b - a) * 1000 for a, b in zip(times, times[1:]) if b - a < 0.5]
    mode = statistics.mode(counts) if counts else 0
    return {"answers": len(counts), "recs_median": statistics.median(counts) if counts else 0,
            "short_answers": sum(1 for c in counts if c < mode), "gap_ms": statistics.median(gaps) if gaps else 0,
            "pauses": pauses}


def consume(peer, topic: str, count: int, conf: dict, script: str = CONSUMER) -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-c", script, peer.bootstrap, topic, str(count), json.dumps(conf)],
                         capture_output=True, text=True, timeout=180)
    return (json.loads(out.stdout) if out.stdout.strip() else {"error": out.stderr[-300:]}), out.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                    help="a consumer setting for every run (e.g. fetch.queue.backoff.ms=10)")
    args = ap.parse_args()
    conf = dict(kv.split("=", 1) for kv in args.set)
    import client

    workdir = Path(tempfile.mkdtemp(prefix="fetch-compare-"))
    brokers = [peers.KBroker(workdir), peers.Kafka4(workdir)]
    rows: dict[str, list] = {b.name: [] for b in brokers}
    load_before = os.getloadavg()
    try:
        for b in brokers:
            b.install()
            b.start()
            b.create_topic("cmp", 1)
            res = client.produce({"bootstrap": b.bootstrap, "topic": "cmp", "count": args.count, "size": args.size,
                                  "deadline_s": 300})
            if "error" in res:
                raise SystemExit(f"{b.name}: produce failed: {res['error']}")
            os.killpg(b.proc.pid, signal.SIGSTOP)
        for _ in range(args.rounds):
            for b in brokers:
                os.killpg(b.proc.pid, signal.SIGCONT)
                time.sleep(0.2)  # let a resumed JVM's timers settle before the clock starts
                res, log = consume(b, "cmp", args.count, {**conf, "debug": "fetch"})
                plain, _ = consume(b, "cmp", args.count, conf)
                kp, _ = consume(b, "cmp", args.count, {}, KAFKA_PYTHON)
                aio, _ = consume(b, "cmp", args.count, {}, AIOKAFKA)
                os.killpg(b.proc.pid, signal.SIGSTOP)
                rows[b.name].append({**summarise(log), "debug_msgs_per_s": res.get("msgs_per_s", 0),
                                     "msgs_per_s": plain.get("msgs_per_s", 0),
                                     "kafka_python": kp.get("msgs_per_s", 0), "aiokafka": aio.get("msgs_per_s", 0)})
    finally:
        for b in brokers:
            if b.proc is not None:
                try:
                    os.killpg(b.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            b.stop()
    load_after = os.getloadavg()
    print(f"consume {args.count:,} x {args.size} B, one partition, assign, confluent-kafka "
          f"{' '.join(args.set) or 'defaults'}; {args.rounds} interleaved rounds; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| broker | round | msg/s | msg/s (debug) | answers | recs/answer (median) | short answers | gap ms (median) "
          "| pauses | kafka-python msg/s | aiokafka msg/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rs in rows.items():
        for i, r in enumerate(rs):
            print(f"| {name} | {i + 1} | {r['msgs_per_s']:,.0f} | {r['debug_msgs_per_s']:,.0f} | {r['answers']} | "
                  f"{r['recs_median']:,.0f} | {r['short_answers']} | {r['gap_ms']:.2f} | {r['pauses']} | "
                  f"{r['kafka_python']:,.0f} | {r['aiokafka']:,.0f} |")
        print(f"| {name} | median | {statistics.median(r['msgs_per_s'] for r in rs):,.0f} | "
              f"{statistics.median(r['debug_msgs_per_s'] for r in rs):,.0f} | | | | "
              f"{statistics.median(r['gap_ms'] for r in rs):.2f} | {statistics.median(r['pauses'] for r in rs)} | "
              f"{statistics.median(r['kafka_python'] for r in rs):,.0f} | "
              f"{statistics.median(r['aiokafka'] for r in rs):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

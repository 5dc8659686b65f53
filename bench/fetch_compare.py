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
decoded in Python), each from assign() to the last record. Group mode (``--modes``, default both): each of
the three clients also as the only member of a new consumer group (``subscribe()``, client defaults,
``auto.offset.reset`` earliest), timed from the first record to the last as in ``make bench`` (joining is
not the broker's read path; Kafka also holds a new group's first join for
``group.initial.rebalance.delay.ms``). Prints a Markdown table with the load average before and after, and
writes the rows to ``--out`` (JSON) when given.
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
bootstrap, topic, n, conf, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cmp%d" % time.time_ns(), "enable.auto.commit": False,
              "auto.offset.reset": "earliest", **conf})
c.list_topics(topic, timeout=10)
t0 = time.perf_counter()
if mode == "group":
    c.subscribe([topic])
else:
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
got, first = 0, None
while got < n and time.perf_counter() - t0 < 120:
    for m in c.consume(min(10000, n - got), 0.2):
        if m.error() is None:
            got += 1
            if first is None:
                first = time.perf_counter()
dt = time.perf_counter() - (first if mode == "group" else t0)
c.close()
print(json.dumps({"got": got, "msgs_per_s": got / dt, "first_record_s": (first or t0) - t0}), flush=True)
"""

KAFKA_PYTHON = r"""
import json, sys, time
from kafka import KafkaConsumer, TopicPartition
bootstrap, topic, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[5]
group = "cmp%d" % time.time_ns() if mode == "group" else None
c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=group,
                  auto_offset_reset="earliest")
c.partitions_for_topic(topic)
tp = TopicPartition(topic, 0)
t0 = time.perf_counter()
if mode == "group":
    c.subscribe([topic])
else:
    c.assign([tp])
    c.seek_to_beginning(tp)
got, first = 0, None
while got < n and time.perf_counter() - t0 < 120:
    for recs in c.poll(timeout_ms=200, max_records=10000).values():
        if first is None:
            first = time.perf_counter()
        got += len(recs)
dt = time.perf_counter() - (first if mode == "group" else t0)
c.close()
print(json.dumps({"got": got, "msgs_per_s": got / dt, "first_record_s": (first or t0) - t0}), flush=True)
"""

AIOKAFKA = r"""
import asyncio, json, sys, time
from aiokafka import AIOKafkaConsumer, TopicPartition
bootstrap, topic, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[5]

async def main():
    group = "cmp%d" % time.time_ns() if mode == "group" else None
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=group,
                         auto_offset_reset="earliest")
    await c.start()
    tp = TopicPartition(topic, 0)
    t0 = time.perf_counter()
    if mode == "group":
        c.subscribe([topic])
    else:
        c.assign([tp])
        await c.seek_to_beginning(tp)
    got, first = 0, None
    while got < n and time.perf_counter() - t0 < 120:
        for recs in (await c.getmany(timeout_ms=200, max_records=10000)).values():
            if first is None:
                first = time.perf_counter()
            got += len(recs)
    dt = time.perf_counter() - (first if mode == "group" else t0)
    await c.stop()
    print(json.dumps({"got": got, "msgs_per_s": got / dt, "first_record_s": (first or t0) - t0}), flush=True)

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


def consume(peer, topic: str, count: int, conf: dict, script: str = CONSUMER, mode: str = "assign") -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-c", script, peer.bootstrap, topic, str(count), json.dumps(conf), mode],
                         capture_output=True, text=True, timeout=180)
    return (json.loads(out.stdout) if out.stdout.strip() else {"error": out.stderr[-300:]}), out.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                    help="a consumer setting for every run (e.g. fetch.queue.backoff.ms=10)")
    ap.add_argument("--modes", default="assign,group", help="assign, group or both (default both)")
    ap.add_argument("--out", default=None, help="also write the rows as JSON to this file")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
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
                row = {}
                if "assign" in modes:
                    res, log = consume(b, "cmp", args.count, {**conf, "debug": "fetch"})
                    plain, _ = consume(b, "cmp", args.count, conf)
                    kp, _ = consume(b, "cmp", args.count, {}, KAFKA_PYTHON)
                    aio, _ = consume(b, "cmp", args.count, {}, AIOKAFKA)
                    row.update(summarise(log), debug_msgs_per_s=res.get("msgs_per_s", 0),
                               msgs_per_s=plain.get("msgs_per_s", 0), kafka_python=kp.get("msgs_per_s", 0),
                               aiokafka=aio.get("msgs_per_s", 0))
                if "group" in modes:
                    for key, script, c in (("group", CONSUMER, conf), ("group_kafka_python", KAFKA_PYTHON, {}),
                                           ("group_aiokafka", AIOKAFKA, {})):
                        got, _ = consume(b, "cmp", args.count, c, script, "group")
                        row[key] = got.get("msgs_per_s", 0) if got.get("got") == args.count else 0
                        row[key + "_first_record_s"] = got.get("first_record_s")
                os.killpg(b.proc.pid, signal.SIGSTOP)
                rows[b.name].append(row)
    finally:
        for b in brokers:
            if b.proc is not None:
                try:
                    os.killpg(b.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            b.stop()
    load_after = os.getloadavg()
    title = (f"consume {args.count:,} x {args.size} B, one partition, confluent-kafka "
             f"{' '.join(args.set) or 'defaults'}; {args.rounds} interleaved rounds; load average "
             f"{load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(title + "\n")
    if args.out:
        Path(args.out).write_text(json.dumps({"title": title, "count": args.count, "size": args.size, "set": args.set,
                                              "load_before": load_before, "load_after": load_after, "rows": rows},
                                             indent=1) + "\n")

    def med(rs, key):
        values = [r[key] for r in rs if r.get(key)]
        return statistics.median(values) if values else 0

    def table(columns: list[str], round_cells, median_cells) -> None:
        """One row per broker and round, then the broker's medians."""
        print("| broker | round | " + " | ".join(columns) + " |")
        print("|---|---:|" + "---:|" * len(columns))
        for name, rs in rows.items():
            for i, r in enumerate(rs):
                print(f"| {name} | {i + 1} | " + " | ".join(round_cells(r)) + " |")
            print(f"| {name} | median | " + " | ".join(median_cells(rs)) + " |")

    if "assign" in modes:
        print("assign:\n")
        table(["msg/s", "msg/s (debug)", "answers", "recs/answer (median)", "short answers", "gap ms (median)",
               "pauses", "kafka-python msg/s", "aiokafka msg/s"],
              lambda r: [f"{r['msgs_per_s']:,.0f}", f"{r['debug_msgs_per_s']:,.0f}", str(r["answers"]),
                         f"{r['recs_median']:,.0f}", str(r["short_answers"]), f"{r['gap_ms']:.2f}", str(r["pauses"]),
                         f"{r['kafka_python']:,.0f}", f"{r['aiokafka']:,.0f}"],
              lambda rs: [f"{med(rs, 'msgs_per_s'):,.0f}", f"{med(rs, 'debug_msgs_per_s'):,.0f}", "", "", "",
                          f"{statistics.median(r['gap_ms'] for r in rs):.2f}",
                          str(statistics.median(r["pauses"] for r in rs)), f"{med(rs, 'kafka_python'):,.0f}",
                          f"{med(rs, 'aiokafka'):,.0f}"])
    if "group" in modes:
        print("\ngroup (subscribe, a new group per run, msg/s from the first record to the last; 0: not all read):\n")
        clients = ("group", "group_kafka_python", "group_aiokafka")
        table(["confluent-kafka msg/s", "kafka-python msg/s", "aiokafka msg/s",
               "first record after subscribe (s): confluent / kafka-python / aiokafka"],
              lambda r: [f"{r[k]:,.0f}" for k in clients] +
                        [" / ".join(f"{r[k + '_first_record_s'] or 0:.2f}" for k in clients)],
              lambda rs: [f"{med(rs, k):,.0f}" for k in clients] + [""])
    if len(rows) == 2:
        (a, ra), (b, rb) = rows.items()
        keys = [k for k in ("msgs_per_s", "kafka_python", "aiokafka", "group", "group_kafka_python", "group_aiokafka")
                if any(k in r for r in ra)]
        print(f"\nratio {a} / {b} (medians): " + ", ".join(
            f"{k} {med(ra, k) / med(rb, k):.2f}x" for k in keys if med(rb, k)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

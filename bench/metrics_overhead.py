"""What the request path's metrics cost: confluent-kafka produce throughput against `python -m kbroker serve
--port 0` of two source trees (before and after), alternated, the median of each.

    python bench/metrics_overhead.py BEFORE_SRC AFTER_SRC [--messages N] [--runs R]

A source tree is a directory holding the kbroker package (e.g. from `git archive <commit> kbroker`).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

from confluent_kafka import Producer


def run_once(src: str, messages: int, size: int, batch: int) -> float:
    env = dict(os.environ, PYTHONPATH=src)
    proc = subprocess.Popen([sys.executable, "-m", "kbroker", "serve", "--port", "0", "--storage", "memory"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+)$", line.strip()).group(1))
        p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "linger.ms": 5, "batch.num.messages": batch, "log_level": 3,
                      "queue.buffering.max.messages": 1000000, "acks": 1})
        p.produce("warmup", b"x")
        p.flush(30)
        value = b"x" * size
        start = time.perf_counter()
        for i in range(messages):
            while True:
                try:
                    p.produce("bench", value)
                    break
                except BufferError:
                    p.poll(0.01)
        assert p.flush(120) == 0
        return messages / (time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--messages", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=10000, help="batch.num.messages: small ones, many requests")
    a = ap.parse_args()
    results: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(a.runs):
        for name, src in (("before", a.before), ("after", a.after)):
            results[name].append(run_once(src, a.messages, a.size, a.batch))
    for name, xs in results.items():
        print(f"{name}: median {statistics.median(xs):,.0f} msg/s  runs {', '.join(f'{x:,.0f}' for x in xs)}")


if __name__ == "__main__":
    main()

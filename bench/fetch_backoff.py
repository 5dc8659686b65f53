"""Why a fast broker reads slowly through librdkafka's defaults: ``python bench/fetch_backoff.py``.

librdkafka stops fetching a partition for ``fetch.queue.backoff.ms`` (1 s by default) whenever its local
queue holds ``queued.min.messages`` (100,000) records or ``queued.max.messages.kbytes`` (64 MiB). A broker
that fills that queue faster than the application drains it trips the pause again and again and then sits
idle; a slower broker never trips it. This script shows it on kbroker alone, with three consumers of the
same 1,000,000 x 100 B (one partition):

1. librdkafka's defaults;
2. the defaults, with kbroker made *slower*: every Fetch answer delayed 3 ms (a control-plane fault);
3. ``fetch.queue.backoff.ms=10``, kbroker at full speed.

If (2) beats (1), the figure of (1) measures the client's pause, not the broker. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import client  # noqa: E402


def _fault(control: str, body: dict | None) -> None:
    if body is None:
        urllib.request.urlopen(urllib.request.Request(f"{control}/faults", method="DELETE")).read()
    else:
        urllib.request.urlopen(urllib.request.Request(f"{control}/faults", data=json.dumps(body).encode(),
                                                      method="POST",
                                                      headers={"Content-Type": "application/json"})).read()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--storage", default="segment")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        proc = subprocess.Popen([sys.executable, "-m", "kbroker", "serve", "--port", "0", "--control-port", "0",
                                 "--storage", args.storage, "--data-dir", data_dir],
                                cwd=BENCH_DIR.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            bootstrap = control = None
            while bootstrap is None or control is None:
                line = proc.stdout.readline()
                if not line:
                    raise SystemExit("kbroker exited before it was ready")
                if m := re.search(r"kbroker listening on (\S+:\d+)$", line.strip()):
                    bootstrap = m.group(1)
                if m := re.search(r"control plane on (http://\S+)", line):
                    control = m.group(1)
            spec = {"bootstrap": bootstrap, "client_conf": {}, "deadline_s": 300, "topic": "backoff",
                    "count": args.count, "size": args.size, "acks": "1"}
            from confluent_kafka.admin import AdminClient, NewTopic
            admin = AdminClient({"bootstrap.servers": bootstrap})
            admin.create_topics([NewTopic("backoff", 1, 1)])["backoff"].result()
            produced = client.produce(spec)
            if "error" in produced:
                raise SystemExit(f"produce failed: {produced['error']}")
            cases = [
                ("librdkafka defaults", {}, None),
                ("defaults, every Fetch answer delayed 3 ms", {}, {"api": "Fetch", "delay_ms": 3, "count": 10**9}),
                ("fetch.queue.backoff.ms=10", {"fetch.queue.backoff.ms": 10}, None),
            ]
            rows = []
            for label, conf, fault in cases:
                figures = []
                for run in range(args.runs):
                    if fault:
                        _fault(control, fault)
                    res = client.consume(dict(spec, mode="assign", group=f"b{run}", client_conf=conf))
                    if fault:
                        _fault(control, None)
                    figures.append(res.get("msgs_per_s", 0.0))
                rows.append((label, statistics.median(figures), figures))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"consume {args.count:,} x {args.size} B from one partition, kbroker --storage {args.storage}, "
          f"confluent-kafka, median of {args.runs}\n")
    print("| consumer | msg/s | runs |\n|---|---:|---|")
    for label, med, figures in rows:
        print(f"| {label} | {med:,.0f} | {', '.join(f'{f:,.0f}' for f in figures)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

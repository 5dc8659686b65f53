"""Time from the pytest fixture's start (an in-process ``Broker(port=0)``, as ``kafka_broker`` makes it) to the
broker answering a Metadata request, in a fresh interpreter each time (imports included, as a test session
pays them). Prints the median and writes bench/results/fixture_start.json.

    .venv/bin/python bench/fixture_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import time
t0 = time.perf_counter()
from kbroker import Broker
from kbroker.admin import AdminConnection
with Broker(port=0, storage=STORAGE) as b:
    with AdminConnection(b.bootstrap_servers) as admin:
        admin.metadata(None)
    print(time.perf_counter() - t0)
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    out = {}
    for storage in ("memory", "segment"):
        times = []
        for _ in range(args.runs):
            r = subprocess.run([sys.executable, "-c", CHILD.replace("STORAGE", repr(storage))], capture_output=True,
                               text=True, check=True, timeout=60)
            times.append(float(r.stdout.strip().splitlines()[-1]))
        out[storage] = {"median_s": statistics.median(times), "runs": times}
        print(f"fixture start to first Metadata ({storage}): median {statistics.median(times):.3f} s "
              f"over {args.runs} runs")
    path = Path(__file__).resolve().parent / "results" / "fixture_start.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

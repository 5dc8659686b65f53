"""Time from the pytest fixture's start (an in-process ``Broker(port=0)``, as ``kafka_broker`` makes it) to the
broker answering a Metadata request, in a fresh interpreter each time (imports included, as a test session
pays them). Prints the median and writes bench/results/fixture_start.json.

Twice: with kbroker's bytecode cached (PYTHONPYCACHEPREFIX under bench/.peers, warmed first), as after a
normal install (pip compiles on install, or Python on first import), and without any (every import
compiles kbroker from source, as in a checkout run with PYTHONDONTWRITEBYTECODE set, which this
workplace's machines set).

    .venv/bin/python bench/fixture_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import time
t0 = time.perf_counter()
from kbroker import Broker
from kbroker.client import BlockingClient
with Broker(port=0, storage=STORAGE) as b:
    with BlockingClient(b.bootstrap_servers) as admin:
        admin.metadata(None)
    print(time.perf_counter() - t0)
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    bench = Path(__file__).resolve().parent
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(bench / ".peers" / "pycache")
    uncached = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    uncached["PYTHONDONTWRITEBYTECODE"] = "1"  # kbroker/__pycache__ as the checkout has it (none, if never written)
    out = {}
    for bytecode, env in (("bytecode cached", cached), ("no bytecode", uncached)):
        for storage in ("memory", "segment"):
            child = CHILD.replace("STORAGE", repr(storage))
            if bytecode == "bytecode cached":
                subprocess.run([sys.executable, "-c", child], capture_output=True, check=True, timeout=60, env=env)
            times = []
            for _ in range(args.runs):
                r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True,
                                   timeout=60, env=env)
                times.append(float(r.stdout.strip().splitlines()[-1]))
            out[f"{storage}, {bytecode}"] = {"median_s": statistics.median(times), "runs": times}
            print(f"fixture start to first Metadata ({storage}, {bytecode}): median "
                  f"{statistics.median(times):.3f} s over {args.runs} runs")
    path = bench / "results" / "fixture_start.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

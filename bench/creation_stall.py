"""Issue 16, many partitions at once: how long another client waits, and how long the broker's event loop is
held, while one client creates a topic of 10,000 partitions (or grows one to 10,000).

    python bench/creation_stall.py [--runs 5] [--partitions 10000] [--grow] [--src DIR ...] [--out FILE.json]

One fresh kbroker (segment storage, its control plane for ``/metrics``) per run. Its RSS is read 1 s after it
answers (idle), a one-partition topic is made, then one connection sends Metadata requests back to back while
another sends the CreateTopics (``--grow``: a CreatePartitions from 1 to ``--partitions``). Reported per run:
the creation's time, the other client's longest wait, the broker's longest loop lag and the part of it its
thread was running (``kbroker_event_loop_lag_max_ms`` / ``kbroker_event_loop_lag_held_max_ms``), idle RSS,
RSS after, and the RSS per partition created. With several ``--src`` trees (an older commit first, for a
before/after comparison) the runs alternate between them, the order swapped every round, and the medians
are per tree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import peers  # noqa: E402

from kbroker.client import BlockingConnection  # noqa: E402
from kbroker.client.aio import metadata_request  # noqa: E402
from kbroker.wire.messages import create_partitions, create_topics  # noqa: E402

C = create_topics.CreateTopicsRequest
P = create_partitions.CreatePartitionsRequest


def loop_lag(control_port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://{peers.HOST}:{control_port}/metrics", timeout=30).read().decode()
    out = {}
    for line in text.splitlines():
        for name in ("kbroker_event_loop_lag_max_ms", "kbroker_event_loop_lag_held_max_ms"):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
    return out


def _request(conn: BlockingConnection, partitions: int, grow: bool):
    if grow:
        return conn.request(37, 3, P(topics=[P.CreatePartitionsTopic(name="big", count=partitions, assignments=None)],
                                     timeout_ms=60000, validate_only=False))
    return conn.request(19, 7, C(topics=[C.CreatableTopic(name="big", num_partitions=partitions, replication_factor=-1,
                                                          assignments=[], configs=[])], timeout_ms=60000))


def run_once(src: str | None, workdir: Path, partitions: int, grow: bool) -> dict:
    peer = peers.KBroker(workdir, "segment", control=True)
    peer.versions_seen = []
    if src is not None:
        peer.cwd = lambda: src
    peer.start()
    try:
        time.sleep(1.0)  # idle RSS as the bench measures it: 1 s after the first answer (a measurement, not a wait)
        idle = peer.rss_bytes()
        with BlockingConnection(peers.HOST, peer.port, timeout_s=120) as creator:
            creator.request(19, 7, C(topics=[C.CreatableTopic(name=n, num_partitions=1, replication_factor=-1,
                                                              assignments=[], configs=[]) for n in ("small", "big")
                                             if n == "small" or grow], timeout_ms=60000))
            before = peer.rss_bytes()
            done = threading.Event()
            latencies: list[float] = []
            started = threading.Event()

            def ping():
                with BlockingConnection(peers.HOST, peer.port) as other:
                    while not done.is_set():
                        t0 = time.perf_counter()
                        other.request(3, 12, metadata_request(12, ["small"]))
                        latencies.append(time.perf_counter() - t0)
                        started.set()

            pinger = threading.Thread(target=ping)
            pinger.start()
            started.wait(30)
            t0 = time.perf_counter()
            result = _request(creator, partitions, grow)
            creation_s = time.perf_counter() - t0
            done.set()
            pinger.join(30)
        codes = [r.error_code for r in (result.results if grow else result.topics)]
        assert codes == [0], codes
        after = peer.rss_bytes()
        lag = loop_lag(peer.control_port)
    finally:
        peer.stop()
    return {"creation_s": round(creation_s, 3), "longest_wait_s": round(max(latencies), 3),
            "lag_max_ms": round(lag["kbroker_event_loop_lag_max_ms"], 1),
            "held_max_ms": round(lag["kbroker_event_loop_lag_held_max_ms"], 1),
            "idle_rss_mb": round(idle / 2**20, 1), "rss_after_mb": round(after / 2**20, 1),
            "kb_per_partition": round((after - before) / 1024 / (partitions - (1 if grow else 0)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--partitions", type=int, default=10000)
    ap.add_argument("--grow", action="store_true", help="CreatePartitions from 1 to --partitions")
    ap.add_argument("--src", action="append", default=None,
                    help="source tree to run the broker from (repeat to alternate; default: this one)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    srcs = args.src or [None]
    runs: dict[str, list[dict]] = {str(s or "this tree"): [] for s in srcs}
    with tempfile.TemporaryDirectory(prefix="creation-stall-") as tmp:
        for i in range(args.runs):
            for src in (srcs if i % 2 == 0 else srcs[::-1]):
                r = run_once(src, Path(tmp), args.partitions, args.grow)
                runs[str(src or "this tree")].append(r)
                print(src or "this tree", r, flush=True)
    median = {name: {k: round(statistics.median(r[k] for r in rs), 3) for k in rs[0]} for name, rs in runs.items()}
    for name, m in median.items():
        print("median", name, m)
    if args.out:
        Path(args.out).write_text(json.dumps({"partitions": args.partitions, "grow": args.grow, "runs": runs,
                                              "median": median}, indent=1) + "\n")


if __name__ == "__main__":
    main()

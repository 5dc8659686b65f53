"""How kbroker's cost grows with the number of topics (issue 17, "How cost grows with the work").

    python bench/scale.py [--topics 100,1000,5000] [--out bench/results/scale.json] [--source DIR]

For each count N, on a fresh broker (``python -m kbroker serve``, segment storage, its own data dir):

- create: N single-partition topics in CreateTopics requests of at most 1,000 topics, one after the other,
  timed until the last answer (kbroker's own client, ``kbroker.client``);
- metadata: the median over 20 Metadata v12 requests for all topics, request written to answer read
  (not decoded), after one warm-up; the answer is checked to name N topics;
- produce: 200,000 x 100 B with confluent-kafka (acks=1, linger.ms=5, batch.size 1 MiB, the settings of
  the main benchmark's produce rows), round-robin over the N topics, timed until flush() returns;
- restart: kill -9, then the time from starting the broker again on the same data dir to a Metadata
  answer naming all N topics.

``--source`` runs the broker from another copy of the source tree (to measure a revision side by side).
Nothing here compares with another broker; a peer such as Apache Kafka can be added the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from kbroker.client import BlockingClient, BlockingConnection  # noqa: E402
from kbroker.client.aio import metadata_request  # noqa: E402

HOST = "127.0.0.1"
BATCH = 1000
PRODUCE_COUNT, PRODUCE_SIZE = 200_000, 100


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, source: Path, data_dir: Path, log_path: Path):
        self.source, self.data_dir, self.log_path = source, data_dir, log_path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, expect_topics: int = 0, timeout_s: float = 600) -> float:
        env = dict(os.environ, PYTHONPATH=str(self.source))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        log = open(self.log_path, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kbroker", "serve", "--host", HOST, "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--storage", "segment"],
            cwd=str(self.source), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited: {self.log_path.read_text()[-800:]}")
            try:
                with BlockingConnection(HOST, self.port, timeout_s=60) as c:
                    md = c.request(3, 12, metadata_request(12, None))
                    if len(md.topics) >= expect_topics:
                        return time.perf_counter() - t0
            except OSError:
                pass
            if time.perf_counter() - t0 > timeout_s:
                raise RuntimeError("broker did not answer")
            time.sleep(0.005)

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()


def create(b: Broker, n: int) -> dict:
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


def metadata_latency(b: Broker, n: int, rounds: int = 20) -> dict:
    with BlockingConnection(HOST, b.port, timeout_s=60) as c:
        md = c.request(3, 12, metadata_request(12, None))
        assert len(md.topics) == n, (len(md.topics), n)
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


def produce(b: Broker, names: list[str]) -> dict:
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


def run(n: int, source: Path, workdir: Path, skip: set[str]) -> dict:
    d = Path(tempfile.mkdtemp(prefix=f"scale-{n}-", dir=workdir))
    b = Broker(source, d / "data", d / "broker.log")
    out: dict = {"topics": n}
    try:
        b.start()
        c = create(b, n)
        names = c.pop("names")
        out["create"] = c
        print(f"  {n} topics: create {c['seconds']} s", flush=True)
        out["metadata"] = metadata_latency(b, n)
        print(f"  {n} topics: metadata {out['metadata']['median_ms']} ms", flush=True)
        if "produce" not in skip:
            out["produce"] = produce(b, names)
            print(f"  {n} topics: produce {out['produce']['msgs_per_s']} msg/s", flush=True)
        b.kill9()
        out["restart_s"] = round(b.start(expect_topics=n), 3)
        print(f"  {n} topics: restart after kill -9 {out['restart_s']} s", flush=True)
    finally:
        b.stop()
        shutil.rmtree(d, ignore_errors=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topics", default="100,1000,5000")
    ap.add_argument("--out", default=str(BENCH_DIR / "results" / "scale.json"))
    ap.add_argument("--source", default=str(BENCH_DIR.parent), help="the kbroker source tree to run")
    ap.add_argument("--skip", default="", help="comma-separated: produce")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kbroker-scale-"))
    source = Path(args.source).resolve()
    rev = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "not a git checkout"
    results = {"source": str(source), "revision": rev, "machine": f"{os.cpu_count()} CPUs",
               "rows": []}
    try:
        for n in (int(x) for x in args.topics.split(",")):
            results["rows"].append(run(n, source, workdir, set(filter(None, args.skip.split(",")))))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

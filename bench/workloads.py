"""What is measured, with which counts, and in which order, against one broker.

``Sizes`` holds the counts of a mode (full or --quick). ``metrics()`` lists every figure of the report
with its unit and direction. ``run_suite()`` runs every workload once against one broker and hands
each figure to ``record``; run.py calls it once per broker per run and takes medians.

One run against one broker:

1. lifecycle, on a fresh broker: start-up to the first answered Metadata, idle RSS, then a topic of
   ``mem_partitions`` partitions with one record in each, and RSS again; stop.
2. throughput and latency, on another fresh broker: for 100 B and 10 KiB records, 1 and 12
   partitions, acks=1 and acks=all, produce into a new topic; after the acks=1 produce, consume that
   topic from the beginning by assign and as a new group. Then end-to-end latency at each rate,
   subscribe-to-first-record, many producer connections, kafka-python produce and consume; stop.

Topics are deleted after use where the broker can, so memory brokers do not grow through the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from peers import Peer, PeerUnavailable

BENCH_DIR = Path(__file__).resolve().parent
SMALL, LARGE = 100, 10 * 1024


@dataclass
class Sizes:
    small_count: int            # 100 B records per produce/consume
    large_count: int            # 10 KiB records per produce/consume
    e2e: dict = field(default_factory=dict)   # msg/s -> seconds of sending
    connections: int = 100
    per_connection: int = 2000
    kp_count: int = 50_000      # kafka-python produce/consume, 100 B
    mem_partitions: int = 1000
    prefill: int = 100          # records in the topic for subscribe-to-first-record
    scale_topics: tuple = (100, 1000, 5000)  # the scale section's topic counts (scale.py)


FULL = Sizes(small_count=1_000_000, large_count=50_000, e2e={1000: 10, 20000: 5}, per_connection=2000,
             kp_count=50_000)
QUICK = Sizes(small_count=100_000, large_count=5_000, e2e={1000: 3, 20000: 1}, per_connection=200,
              kp_count=10_000, scale_topics=(100, 1000))


def _size_label(size: int) -> str:
    return "100 B" if size == SMALL else "10 KiB"


def _sk(size: int) -> str:
    return "100B" if size == SMALL else "10KiB"


# Consume modes: (label, client mode, extra confluent-kafka settings). librdkafka stops fetching a partition for
# fetch.queue.backoff.ms (1 s by default) whenever its queue holds queued.min.messages (100,000) records or
# queued.max.messages.kbytes (64 MiB); a broker that fills the queue faster than the application drains it is
# then idle most of the time. The third mode shortens that pause to 10 ms, so the figure shows the broker and
# not the pause (bench/README.md, "The client's fetch back-off").
CONSUME_MODES = {
    "assign": ("assign", "assign", {}),
    "group": ("group", "group", {}),
    "assign-backoff10": ("assign, fetch.queue.backoff.ms=10", "assign", {"fetch.queue.backoff.ms": 10}),
    "group-backoff10": ("group, fetch.queue.backoff.ms=10", "group", {"fetch.queue.backoff.ms": 10}),
}


@dataclass
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    section: str


def metrics(sizes: Sizes) -> list[Metric]:
    out = []
    for size, n in ((SMALL, sizes.small_count), (LARGE, sizes.large_count)):
        for parts in (1, 12):
            for acks in ("1", "all"):
                out.append(Metric(f"produce.{_sk(size)}.acks{acks}.p{parts}",
                                  f"produce {n:,} x {_size_label(size)}, acks={acks}, {parts} partition(s)",
                                  "msg/s", True, "produce"))
    for size, n in ((SMALL, sizes.small_count), (LARGE, sizes.large_count)):
        for parts in (1, 12):
            for mode in CONSUME_MODES:
                out.append(Metric(f"consume.{_sk(size)}.{mode}.p{parts}",
                                  f"consume {n:,} x {_size_label(size)}, {CONSUME_MODES[mode][0]}, {parts} partition(s)",
                                  "msg/s", True, "consume"))
    for rate in sizes.e2e:
        for q in ("p50", "p99", "p999"):
            out.append(Metric(f"e2e.{rate}.{q}", f"end-to-end latency {q} at {rate:,} msg/s", "ms", False, "latency"))
    out += [
        Metric("subscribe_first", "subscribe() to first record (new group)", "s", False, "latency"),
        Metric("startup", "process start to first answered Metadata", "s", False, "lifecycle"),
        Metric("rss_idle", "RSS idle", "MB", False, "lifecycle"),
        Metric("rss_partitions", f"RSS with {sizes.mem_partitions:,} partitions (1 record each)", "MB", False,
               "lifecycle"),
        Metric("conns", f"{sizes.connections} producer connections, {sizes.connections * sizes.per_connection:,} x 100 B",
               "msg/s", True, "connections"),
        Metric("kp.produce", f"kafka-python produce {sizes.kp_count:,} x 100 B", "msg/s", True, "kafka-python"),
        Metric("kp.consume", f"kafka-python consume {sizes.kp_count:,} x 100 B (assign)", "msg/s", True,
               "kafka-python"),
        Metric("aio.consume", f"aiokafka consume {sizes.kp_count:,} x 100 B (assign)", "msg/s", True,
               "kafka-python"),
    ]
    import scale
    for n in sizes.scale_topics:
        for key, label, unit, higher, _ in scale.ROWS:
            out.append(Metric(f"scale.{key}.{n}", label.format(n=n), unit, higher, "scale"))
    return out


# -- running one client workload in its own process -----------------------------------------------------

def client(workload: str, spec: dict, log_dir: Path) -> dict:
    """Run bench/client.py WORKLOAD in a fresh process, bounded by spec['deadline_s']."""
    log = log_dir / f"client-{workload}-{uuid.uuid4().hex[:6]}.log"
    with open(log, "wb") as err:
        try:
            r = subprocess.run([sys.executable, str(BENCH_DIR / "client.py"), workload, json.dumps(spec)],
                               stdout=subprocess.PIPE, stderr=err, text=True, timeout=spec["deadline_s"] + 15)
        except subprocess.TimeoutExpired:
            return {"error": f"client did not finish within {spec['deadline_s'] + 15:.0f} s"}
    lines = r.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"error": f"client exited {r.returncode} without a result: {log.read_text(errors='replace')[-400:]}"}
    if "error" in result:
        tail = log.read_text(errors="replace").strip()[-300:]
        if tail:
            result["client_stderr"] = tail
    return result


def _deadline(count: int, min_rate: float) -> float:
    return 30 + count / min_rate


class Suite:
    """One run of every workload against one broker. ``record(key, value, detail)`` gets each figure;
    ``value`` is a number, or None with ``detail['error']`` or ``detail['skipped']`` saying why."""

    def __init__(self, peer: Peer, sizes: Sizes, record, log_dir: Path, say, only: set[str] | None = None,
                 client_set: dict | None = None):
        self.peer, self.sizes, self.record, self.log_dir, self.say = peer, sizes, record, log_dir, say
        self.only = only
        self.client_set = client_set or {}

    def _want(self, section: str) -> bool:
        return self.only is None or section in self.only

    def _spec(self, **kw) -> dict:
        return {"bootstrap": self.peer.bootstrap, "client_conf": {**self.peer.client_conf, **self.client_set},
                "kafka_python_conf": self.peer.kafka_python_conf, "group": f"g-{uuid.uuid4().hex[:8]}", **kw}

    def _topic(self, what: str, partitions: int) -> str:
        name = f"bench-{what}-{uuid.uuid4().hex[:6]}"
        self.peer.create_topic(name, partitions)
        return name

    def _check_alive(self) -> None:
        if not self.peer.alive():
            raise PeerUnavailable(f"{self.peer.name} exited (code {self.peer.proc.returncode if self.peer.proc else '?'})")

    def _put(self, key: str, result: dict, field_name: str = "msgs_per_s") -> None:
        value = result.get(field_name)
        if "error" in result:
            value = None
        self.record(key, value, result)

    # ------------------------------------------------------------------------------------------------
    def lifecycle(self) -> None:
        peer = self.peer
        startup = peer.start()
        try:
            self.record("startup", startup, {"seconds": startup})
            time.sleep(1.0)
            self.record("rss_idle", peer.rss_bytes() / 1e6, {})
            n = self.sizes.mem_partitions
            try:
                topic = self._topic("mem", n)
                res = client("fill_partitions", self._spec(topic=topic, partitions=n, deadline_s=120), self.log_dir)
                self._check_alive()
                if "error" in res:
                    self.record("rss_partitions", None, res)
                else:
                    time.sleep(1.0)
                    self.record("rss_partitions", peer.rss_bytes() / 1e6, res)
            except Exception as e:  # noqa: BLE001
                self.record("rss_partitions", None, {"error": f"{type(e).__name__}: {e}"})
        finally:
            peer.stop()

    def workloads(self) -> None:
        peer = self.peer
        startup = peer.start()
        self.record("startup", startup, {"seconds": startup})
        try:
            groups_ok, groups_why = peer.group_support()
            self.say(f"  groups: {'yes' if groups_ok else 'no: ' + groups_why}")
            if self._want("produce") or self._want("consume"):
                self._produce_consume(groups_ok, groups_why)
            if self._want("latency"):
                self._latency(groups_ok, groups_why)
            if self._want("connections"):
                self._guard("conns", self._connections)
            if self._want("kafka-python"):
                self._guard(("kp.produce", "kp.consume", "aio.consume"), self._kafka_python)
        finally:
            peer.stop()

    def _guard(self, keys, fn, *args) -> None:
        """Run ``fn``; an exception becomes the error of every figure in ``keys``."""
        try:
            self._check_alive()
            fn(*args)
        except Exception as e:  # noqa: BLE001
            for k in (keys if isinstance(keys, tuple) else (keys,)):
                self.record(k, None, {"error": f"{type(e).__name__}: {e}"})

    def _produce_consume(self, groups_ok: bool, groups_why: str) -> None:
        for size, count, min_rate in ((SMALL, self.sizes.small_count, 10000), (LARGE, self.sizes.large_count, 1000)):
            for parts in (1, 12):
                for acks in ("1", "all"):
                    pkey = f"produce.{_sk(size)}.acks{acks}.p{parts}"
                    ckeys = tuple(f"consume.{_sk(size)}.{m}.p{parts}" for m in CONSUME_MODES) if acks == "1" else ()
                    self._guard((pkey,) + ckeys, self._one_produce_consume, size, count, min_rate, parts, acks,
                                pkey, ckeys, groups_ok, groups_why)

    def _one_produce_consume(self, size, count, min_rate, parts, acks, pkey, ckeys, groups_ok, groups_why):
        topic = self._topic(f"{_sk(size)}-p{parts}-acks{acks}", parts)
        try:
            res = client("produce", self._spec(topic=topic, count=count, size=size, acks=acks,
                                               deadline_s=_deadline(count, min_rate)), self.log_dir)
            self._check_alive()
            self._put(pkey, res)
            self.say(f"  {pkey}: {_fmt(res, 'msgs_per_s')}")
            if not ckeys or not self._want("consume"):
                return
            if "error" in res:
                for k in ckeys:
                    self.record(k, None, {"error": "no data: the produce before it failed"})
                return
            for key in ckeys:
                _label, mode, settings = CONSUME_MODES[key.split(".")[2]]
                if mode == "group" and not groups_ok:
                    self.record(key, None, {"skipped": f"no consumer groups: {groups_why}"})
                    continue
                spec = self._spec(topic=topic, count=count, mode=mode, deadline_s=_deadline(count, min_rate) + 30)
                spec["client_conf"] = {**spec["client_conf"], **settings}
                res = client("consume", spec, self.log_dir)
                self._check_alive()
                self._put(key, res)
                self.say(f"  {key}: {_fmt(res, 'msgs_per_s')}")
        finally:
            if self.peer.alive():
                self.peer.delete_topic(topic)

    def _latency(self, groups_ok: bool, groups_why: str) -> None:
        for rate, seconds in self.sizes.e2e.items():
            keys = tuple(f"e2e.{rate}.{q}" for q in ("p50", "p99", "p999"))
            self._guard(keys, self._e2e, rate, seconds, keys)
        if not groups_ok:
            self.record("subscribe_first", None, {"skipped": f"no consumer groups: {groups_why}"})
        else:
            self._guard("subscribe_first", self._subscribe_first)

    def _e2e(self, rate, seconds, keys):
        topic = self._topic(f"e2e{rate}", 1)
        try:
            res = client("e2e", self._spec(topic=topic, rate=rate, duration_s=seconds, deadline_s=seconds + 90),
                         self.log_dir)
            self._check_alive()
            for k in keys:
                self._put(k, res, k.rsplit(".", 1)[1] + "_ms")
            self.say(f"  e2e @{rate}/s: p50 {_fmt(res, 'p50_ms')} p99 {_fmt(res, 'p99_ms')} "
                     f"p999 {_fmt(res, 'p999_ms')} ms")
        finally:
            if self.peer.alive():
                self.peer.delete_topic(topic)

    def _subscribe_first(self):
        topic = self._topic("sub", 1)
        try:
            res = client("produce", self._spec(topic=topic, count=self.sizes.prefill, size=SMALL, acks="1",
                                               deadline_s=60), self.log_dir)
            if "error" in res:
                self.record("subscribe_first", None, {"error": f"prefill failed: {res['error']}"})
                return
            res = client("subscribe_first", self._spec(topic=topic, deadline_s=60), self.log_dir)
            self._check_alive()
            self._put("subscribe_first", res, "seconds")
            self.say(f"  subscribe_first: {_fmt(res, 'seconds')} s")
        finally:
            if self.peer.alive():
                self.peer.delete_topic(topic)

    def _connections(self):
        topic = self._topic("conns", 12)
        try:
            n = self.sizes.connections * self.sizes.per_connection
            res = client("many_producers", self._spec(topic=topic, connections=self.sizes.connections,
                                                      per_connection=self.sizes.per_connection, size=SMALL,
                                                      deadline_s=_deadline(n, 5000) + 60), self.log_dir)
            self._check_alive()
            self._put("conns", res)
            self.say(f"  conns: {_fmt(res, 'msgs_per_s')}")
        finally:
            if self.peer.alive():
                self.peer.delete_topic(topic)

    def _kafka_python(self):
        topic = self._topic("kp", 1)
        n = self.sizes.kp_count
        try:
            res = client("kp_produce", self._spec(topic=topic, count=n, size=SMALL, deadline_s=_deadline(n, 2000)),
                         self.log_dir)
            self._check_alive()
            self._put("kp.produce", res)
            self.say(f"  kp.produce: {_fmt(res, 'msgs_per_s')}")
            if "error" in res:
                for key in ("kp.consume", "aio.consume"):
                    self.record(key, None, {"error": "no data: the produce before it failed"})
                return
            res = client("kp_consume", self._spec(topic=topic, count=n, deadline_s=_deadline(n, 2000)), self.log_dir)
            self._check_alive()
            self._put("kp.consume", res)
            self.say(f"  kp.consume: {_fmt(res, 'msgs_per_s')}")
            res = client("aio_consume", self._spec(topic=topic, count=n, deadline_s=_deadline(n, 2000)), self.log_dir)
            self._check_alive()
            self._put("aio.consume", res)
            self.say(f"  aio.consume: {_fmt(res, 'msgs_per_s')}")
        finally:
            if self.peer.alive():
                self.peer.delete_topic(topic)


def _fmt(res: dict, key: str) -> str:
    if "error" in res:
        return "ERROR " + str(res["error"])[:160]
    v = res.get(key)
    return f"{v:,.3f}" if isinstance(v, float) and v < 100 else (f"{v:,.0f}" if isinstance(v, (int, float)) else str(v))

"""A soak run (issue 16): many connections, well-behaved and hostile clients together, for a fixed time.

    python bench/soak.py [--duration 600] [--interval 30] [--peer kbroker|kafka-4] [--out bench/results/soak]

One fresh broker (bench/peers.py) and, each in its own process so that no client's Python holds another's:

- well-behaved, measured:
  - ``e2e``: a confluent-kafka producer (linger.ms=0, acks=1) sending 500 x 100 B per second, each carrying
    its send time, and an assigned consumer of the same partition; the latency of every record;
  - ``probe``: kbroker.client on one connection, a Metadata request for one topic every 20 ms; the round
    trip of each;
  - ``load``: a producer at 2,000 x 1 KiB per second into 6 partitions and a group consumer reading them;
- idle: ``--idle`` connections (300) that sent one ApiVersions request and then nothing;
- churn: clients that connect, ask ApiVersions and Metadata, and leave, about 20 a second;
- hostile (raw sockets, the frames an attacker would send):
  - slow readers: 4 connections with a 4 KiB receive window that pipeline 8 Fetch requests of a 64 MB
    partition asking for 2 GiB each, then read 4 KiB every 50 ms (reconnecting every 30 s);
  - huge fetches: 2 connections asking for 2 GiB of that partition, reading every answer, over and over;
  - a metadata burst: 2,000 pipelined all-topics Metadata requests every 2 s, read back;
  - an admin burst: every 5 s, CreateTopics of 20 topics x 10 partitions, then DeleteTopics of them.

Every ``--interval`` seconds the orchestrator samples the broker's RSS (with its children), open file
descriptors and CPU time (its share of one core: near 100 % it is saturated and requests queue) from
/proc, and each well-behaved client reports the p50/p99/max of its latencies in that interval. Those
latencies mix the broker's delays with the clients' own share of the 2 cores; the broker's alone is its
event loop's lag (kbroker/loop_lag.py, read from its ``/metrics`` every 2 s): per interval the longest
stall, held by the loop's own work and in all (with the waits for a core), the stalled time and the samples
over 100 ms (a stall is seen by the polls for 5 to 10 s, so one at an interval's very end may be counted in
the next). The report (``<out>.json`` and ``<out>.md``) has a row per interval and the start and end
values; RSS, descriptors and p99 should stay flat. ``run.py --workloads soak`` runs it against kbroker
after the other sections (``--quick``: 60 s).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import peers  # noqa: E402

BIG, E2E, LOAD = "soak-big", "soak-e2e", "soak-load"
BIG_BYTES = 64 << 20


# -- the clients, each run in a process of its own ----------------------------------------------------

def _interval_stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    values.sort()
    return {"n": len(values), "p50_ms": round(values[len(values) // 2] * 1000, 3),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))] * 1000, 3),
            "max_ms": round(values[-1] * 1000, 3)}


def e2e_client(bootstrap: str, stop_at: float, interval: float, out) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_END
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "1", "log_level": 0})
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-e2e", "enable.auto.commit": False,
                  "log_level": 0, "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(E2E, 0, OFFSET_END)])
    lat: list[float] = []
    stop = threading.Event()

    def send():
        n = 0
        t0 = time.monotonic()
        while not stop.is_set():
            p.produce(E2E, struct.pack(">q", time.monotonic_ns()) + bytes(92), partition=0)
            p.poll(0)
            n += 1
            ahead = t0 + n / 500 - time.monotonic()
            if ahead > 0:
                stop.wait(ahead)
        p.flush(10)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    next_report = time.monotonic() + interval
    while time.monotonic() < stop_at:
        for m in c.consume(1000, 0.05):
            if m.error() is None:
                lat.append((time.monotonic_ns() - struct.unpack_from(">q", m.value())[0]) / 1e9)
        if time.monotonic() >= next_report:
            out.put(("e2e", _interval_stats(lat)))
            lat = []
            next_report += interval
    stop.set()
    sender.join(15)
    c.close()


def probe_client(host: str, port: int, stop_at: float, interval: float, out) -> None:
    from kbroker.client import BlockingConnection
    from kbroker.client.aio import metadata_request
    lat: list[float] = []
    next_report = time.monotonic() + interval
    with BlockingConnection(host, port, timeout_s=60) as c:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            c.request(3, 12, metadata_request(12, [E2E]))
            lat.append(time.perf_counter() - t0)
            time.sleep(0.02)
            if time.monotonic() >= next_report:
                out.put(("probe", _interval_stats(lat)))
                lat = []
                next_report += interval


def load_client(bootstrap: str, stop_at: float, interval: float, out) -> None:
    from confluent_kafka import Consumer, Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "1", "log_level": 0})
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-load", "auto.offset.reset": "earliest",
                  "log_level": 0, "session.timeout.ms": 10000})
    c.subscribe([LOAD])
    payload = os.urandom(1024)
    sent = got = 0
    t0 = time.monotonic()
    next_report = t0 + interval
    while time.monotonic() < stop_at:
        while sent < (time.monotonic() - t0) * 2000:
            try:
                p.produce(LOAD, payload)
                sent += 1
            except BufferError:
                break
        p.poll(0)
        got += sum(1 for m in c.consume(500, 0.01) if m.error() is None)
        if time.monotonic() >= next_report:
            out.put(("load", {"sent": sent, "consumed": got}))
            next_report += interval
    p.flush(10)
    c.close()


def _api_versions_frame(correlation_id: int = 1) -> bytes:
    body = struct.pack(">hhih", 18, 0, correlation_id, -1)
    return struct.pack(">i", len(body)) + body


def _read_frames(sock: socket.socket, count: int) -> None:
    buf = bytearray()
    while count:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">i", buf)[0]:
            del buf[:4 + struct.unpack_from(">i", buf)[0]]
            count -= 1


def idle_and_churn(host: str, port: int, idle: int, stop_at: float, interval: float, out) -> None:
    held = []
    for _ in range(idle):
        s = socket.create_connection((host, port), timeout=60)
        s.sendall(_api_versions_frame())
        _read_frames(s, 1)
        held.append(s)
    from kbroker.client import BlockingConnection
    from kbroker.client.aio import metadata_request
    churned = 0
    next_report = time.monotonic() + interval
    while time.monotonic() < stop_at:
        try:
            with BlockingConnection(host, port, timeout_s=60) as c:
                c.request(3, 12, metadata_request(12, [LOAD]))
            churned += 1
        except (OSError, ConnectionError):
            pass
        time.sleep(0.05)
        if time.monotonic() >= next_report:
            alive = sum(1 for s in held if _still_open(s))
            out.put(("idle_churn", {"idle_open": alive, "churned": churned}))
            next_report += interval
    for s in held:
        s.close()


def _still_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def hostile(host: str, port: int, stop_at: float, interval: float, out) -> None:
    from kbroker.client import BlockingConnection
    from kbroker.client.aio import metadata_request
    from kbroker.wire.messages import fetch as F_mod
    F = F_mod.FetchRequest

    def fetch_req(max_bytes=2**31 - 1):
        return F(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=max_bytes, isolation_level=0, session_id=0,
                 session_epoch=-1, topics=[F.FetchTopic(topic=BIG, partitions=[F.FetchPartition(
                     partition=0, fetch_offset=0, partition_max_bytes=max_bytes, current_leader_epoch=-1,
                     log_start_offset=-1)])], forgotten_topics_data=[], rack_id="")

    counts = {"slow_reader_bytes": 0, "huge_fetches": 0, "metadata_bursts": 0, "admin_bursts": 0, "errors": 0}

    def guard(fn):
        def loop():
            while time.monotonic() < stop_at:
                try:
                    fn()
                except (OSError, ConnectionError, AssertionError):
                    counts["errors"] += 1
                    time.sleep(0.5)
        return threading.Thread(target=loop, daemon=True)

    def slow_reader():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(60)
        s.connect((host, port))
        c = BlockingConnection.over(s)
        c.send_bytes(b"".join(c.frame(1, 11, fetch_req()) for _ in range(8)))
        until = min(stop_at, time.monotonic() + 30)
        while time.monotonic() < until:
            got = s.recv(4096)
            if not got:
                break
            counts["slow_reader_bytes"] += len(got)
            time.sleep(0.05)
        s.close()

    def huge_fetch():
        with BlockingConnection(host, port, timeout_s=60) as c:
            while time.monotonic() < stop_at:
                c.request(1, 11, fetch_req())
                counts["huge_fetches"] += 1

    def metadata_burst():
        with BlockingConnection(host, port, timeout_s=60) as c:
            frames = b"".join(c.frame(3, 12, metadata_request(12, None)) for _ in range(2000))
            c.send_bytes(frames)
            for _ in range(2000):
                c.read_frame()
            c.protocol.in_flight.clear()
        counts["metadata_bursts"] += 1
        time.sleep(2)

    def admin_burst():
        from kbroker.client import BlockingClient
        names = [f"soak-admin-{i}" for i in range(20)]
        with BlockingClient(f"{host}:{port}", timeout_s=60) as a:
            a.create_topics({n: {"partitions": 10} for n in names})
            a.delete_topics(names)
        counts["admin_bursts"] += 1
        time.sleep(5)

    threads = [guard(slow_reader) for _ in range(4)] + [guard(huge_fetch) for _ in range(2)] + \
        [guard(metadata_burst), guard(admin_burst)]
    for t in threads:
        t.start()
    next_report = time.monotonic() + interval
    while time.monotonic() < stop_at:
        time.sleep(max(0.0, min(next_report, stop_at) - time.monotonic()))
        if time.monotonic() >= next_report:
            out.put(("hostile", dict(counts)))
            next_report += interval
    for t in threads:
        t.join(60)


# -- the orchestrator ---------------------------------------------------------------------------------------

def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(peer) -> None:
    from confluent_kafka import Producer
    peer.create_topic(BIG, 1)
    peer.create_topic(E2E, 1)
    peer.create_topic(LOAD, 6)
    p = Producer({"bootstrap.servers": peer.bootstrap, "linger.ms": 5, "batch.size": 1 << 20, "log_level": 0})
    value = os.urandom(10240)
    for _ in range(BIG_BYTES // len(value)):
        while True:
            try:
                p.produce(BIG, value, partition=0)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(120)


LAG_FAMILIES = {"kbroker_event_loop_lag": "lag", "kbroker_event_loop_lag_held": "held"}


def scrape_loop_lag(control_port: int) -> dict | None:
    """The loop-lag families of the broker's /metrics (kbroker/loop_lag.py), for ``lag`` (all of it) and
    ``held`` (the part the loop's thread was running): {"lag": {"recent_max_ms", "max_ms", "count", "sum_ms",
    "buckets": {le: cumulative}}, "held": {...}}; None if it cannot be read."""
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://{peers.HOST}:{control_port}/metrics", timeout=60) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {kind: {"buckets": {}} for kind in LAG_FAMILIES.values()}
    for line in text.splitlines():
        if not line.startswith("kbroker_event_loop_lag"):
            continue
        name, value = line.rsplit(" ", 1)
        base = name.split("{", 1)[0]
        for prefix, kind in LAG_FAMILIES.items():
            field = base[len(prefix):] if base.startswith(prefix) else None
            if field == "_ms_bucket":
                out[kind]["buckets"][float(name.split('le="', 1)[1].split('"', 1)[0])] = float(value)
            elif field in ("_ms_count", "_ms_sum", "_max_ms", "_recent_max_ms"):
                out[kind][{"_ms_count": "count", "_ms_sum": "sum_ms", "_max_ms": "max_ms",
                           "_recent_max_ms": "recent_max_ms"}[field]] = float(value)
    return out if all("count" in v for v in out.values()) else None


def loop_lag_interval(before: dict | None, after: dict | None, longest: dict) -> dict:
    """One interval's loop lag from two scrapes (histogram deltas) and the polls' longest recent stalls:
    for ``lag`` and ``held``, the longest stall, the time stalled in all, the samples over 100 ms, and the
    bucket bound the p99 is under."""
    if not before or not after:
        return {}
    row = {}
    for kind in LAG_FAMILIES.values():
        b, a = before[kind], after[kind]
        n = a["count"] - b["count"]
        delta = sorted((le, c - b["buckets"].get(le, 0.0)) for le, c in a["buckets"].items())
        p99 = next((le for le, c in delta if n and c >= 0.99 * n), None)
        over_100 = n - dict(delta).get(100.0, n)
        row[kind] = {"samples": int(n), "max_ms": round(longest[kind], 1) if longest.get(kind) is not None else None,
                     "p99_ms_at_most": p99, "over_100ms": int(over_100),
                     "stalled_s": round((a["sum_ms"] - b["sum_ms"]) / 1000, 2)}
    return row


class LagPoller(threading.Thread):
    """Reads the broker's recent longest loop stalls every ``every_s``; ``take()`` returns the longest seen
    since the last take, per kind."""

    def __init__(self, control_port: int, every_s: float = 2.0):
        super().__init__(daemon=True, name="loop-lag")
        self.control_port, self.every_s = control_port, every_s
        self.longest: dict[str, float] = {}
        self.stopped = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            got = scrape_loop_lag(self.control_port)
            if got is not None:
                with self.lock:
                    for kind, v in got.items():
                        self.longest[kind] = max(self.longest.get(kind, 0.0), v["recent_max_ms"])

    def take(self) -> dict[str, float]:
        with self.lock:
            longest, self.longest = self.longest, {}
        return longest


def soak(peer, duration: float, interval: float, idle: int, say=print) -> dict:
    """Runs the soak against a started ``peer``; returns the samples."""
    fill(peer)
    host, port = peers.HOST, peer.port
    pid = peer.pids()[0]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    stop_at = time.monotonic() + duration
    procs = [ctx.Process(target=e2e_client, args=(peer.bootstrap, stop_at, interval, out), name="e2e"),
             ctx.Process(target=probe_client, args=(host, port, stop_at, interval, out), name="probe"),
             ctx.Process(target=load_client, args=(peer.bootstrap, stop_at, interval, out), name="load"),
             ctx.Process(target=idle_and_churn, args=(host, port, idle, stop_at, interval, out), name="idle_churn"),
             ctx.Process(target=hostile, args=(host, port, stop_at, interval, out), name="hostile")]
    control_port = getattr(peer, "control_port", None)
    poller = LagPoller(control_port) if control_port else None
    lag_before = scrape_loop_lag(control_port) if control_port else None
    start = time.monotonic()
    cpu_before, cpu_at = cpu_seconds(pid), start
    samples = [{"t_s": 0, "rss_mb": round(peer.rss_bytes() / 1e6, 1), "fds": fds(pid)}]
    if poller is not None:
        poller.take()
        poller.start()
    for p in procs:
        p.start()
    reports: dict[str, list] = {}
    next_sample = start + interval
    while time.monotonic() < stop_at + 5 or any(p.is_alive() for p in procs):
        try:
            kind, value = out.get(timeout=0.5)
            reports.setdefault(kind, []).append(value)
        except Exception:  # noqa: BLE001  queue.Empty
            pass
        if time.monotonic() >= next_sample and time.monotonic() <= stop_at + 1:
            samples.append({"t_s": round(time.monotonic() - start), "rss_mb": round(peer.rss_bytes() / 1e6, 1),
                            "fds": fds(pid), "load_average": os.getloadavg()[0]})
            # the broker's share of one core: near 100 % it is saturated and requests queue behind each other
            cpu_now, now = cpu_seconds(pid), time.monotonic()
            samples[-1]["broker_cpu_pct"] = round(100 * (cpu_now - cpu_before) / max(now - cpu_at, 1e-9))
            cpu_before, cpu_at = cpu_now, now
            if poller is not None:
                lag_after = scrape_loop_lag(control_port)
                samples[-1]["loop_lag"] = loop_lag_interval(lag_before, lag_after, poller.take())
                lag_before = lag_after or lag_before
            say(f"  soak {samples[-1]['t_s']} s: RSS {samples[-1]['rss_mb']} MB, {samples[-1]['fds']} fds, "
                f"loop lag {samples[-1].get('loop_lag', {})}")
            next_sample += interval
        if time.monotonic() > stop_at + 120:
            break
    if poller is not None:
        poller.stopped.set()
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.terminate()
    while True:
        try:
            kind, value = out.get(timeout=0.2)
            reports.setdefault(kind, []).append(value)
        except Exception:  # noqa: BLE001
            break
    rows = []
    for i, s in enumerate(samples[1:]):
        row = dict(s)
        for kind in ("e2e", "probe", "load", "idle_churn", "hostile"):
            if i < len(reports.get(kind, [])):
                row[kind] = reports[kind][i]
        rows.append(row)
    alive = peer.alive()
    # A client that died is said in the result: the intervals after it measured less load than described.
    exits = {p.name: p.exitcode for p in procs if p.exitcode not in (0, None, -15)}
    return {"duration_s": duration, "interval_s": interval, "idle_connections": idle, "start": samples[0],
            "rows": rows, "broker_alive_at_end": alive, "clients_failed": exits}


def markdown(result: dict, peer_name: str) -> str:
    lines = [f"# Soak: {peer_name}, {result['duration_s']:.0f} s", "",
             f"Start: RSS {result['start']['rss_mb']} MB, {result['start']['fds']} fds; "
             f"{result['idle_connections']} idle connections held; broker alive at the end: "
             f"{result['broker_alive_at_end']}; clients that failed: {result.get('clients_failed') or 'none'}.", "",
             "| t (s) | RSS MB | fds | e2e p50 / p99 / max ms | probe p50 / p99 / max ms | load sent / consumed | "
             "idle open / churned | slow-reader KB / huge fetches / metadata bursts / admin bursts / errors | "
             "loop stall max ms: held / all | loop stalled s: held / all | samples > 100 ms: held / all | broker CPU % "
             "| load avg |",
             "|---:|---:|---:|---|---|---|---|---|---|---|---|---:|---:|"]
    for r in result["rows"]:
        e, p, ld = r.get("e2e", {}), r.get("probe", {}), r.get("load", {})
        ic, h, lag = r.get("idle_churn", {}), r.get("hostile", {}), r.get("loop_lag", {})
        held, every = lag.get("held", {}), lag.get("lag", {})
        lines.append(
            f"| {r['t_s']} | {r['rss_mb']} | {r['fds']} | {e.get('p50_ms', '-')} / {e.get('p99_ms', '-')} / "
            f"{e.get('max_ms', '-')} | {p.get('p50_ms', '-')} / {p.get('p99_ms', '-')} / {p.get('max_ms', '-')} | "
            f"{ld.get('sent', '-')} / {ld.get('consumed', '-')} | {ic.get('idle_open', '-')} / {ic.get('churned', '-')} | "
            f"{h.get('slow_reader_bytes', 0) // 1024} / {h.get('huge_fetches', '-')} / {h.get('metadata_bursts', '-')} / "
            f"{h.get('admin_bursts', '-')} / {h.get('errors', '-')} | {held.get('max_ms', '-')} / "
            f"{every.get('max_ms', '-')} | {held.get('stalled_s', '-')} / {every.get('stalled_s', '-')} | "
            f"{held.get('over_100ms', '-')} / {every.get('over_100ms', '-')} | {r.get('broker_cpu_pct', '-')} | "
            f"{r.get('load_average', 0):.1f} |")
    return "\n".join(lines) + "\n"


def summary(result: dict) -> dict:
    """The figures run.py reports: RSS and fds at start and end, the worst interval's p99s."""
    rows = result["rows"]
    if not rows:
        return {}
    p99s = [r["e2e"]["p99_ms"] for r in rows if r.get("e2e", {}).get("n")]
    probes = [r["probe"]["p99_ms"] for r in rows if r.get("probe", {}).get("n")]
    lag = {kind: [r["loop_lag"][kind] for r in rows if r.get("loop_lag", {}).get(kind, {}).get("max_ms") is not None]
           for kind in LAG_FAMILIES.values()}
    return {"rss_start_mb": result["start"]["rss_mb"], "rss_end_mb": rows[-1]["rss_mb"],
            "rss_max_mb": max(r["rss_mb"] for r in rows), "fds_start": result["start"]["fds"],
            "fds_end": rows[-1]["fds"], "e2e_p99_ms_median": statistics.median(p99s) if p99s else None,
            "e2e_p99_ms_worst": max(p99s) if p99s else None,
            "probe_p99_ms_median": statistics.median(probes) if probes else None,
            "probe_p99_ms_worst": max(probes) if probes else None,
            **{f"loop_{kind}_max_ms_median": statistics.median(x["max_ms"] for x in v) if v else None
               for kind, v in lag.items()},
            **{f"loop_{kind}_max_ms_worst": max(x["max_ms"] for x in v) if v else None for kind, v in lag.items()},
            **{f"loop_{kind}_stalled_s_total": round(sum(x["stalled_s"] for x in v), 1) for kind, v in lag.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--idle", type=int, default=300)
    ap.add_argument("--peer", default="kbroker", choices=["kbroker", "kafka-4"])
    ap.add_argument("--out", default=str(BENCH_DIR / "results" / "soak"), help="path without extension")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kbroker-soak-"))
    peer = peers.KBroker(workdir, "segment", control=True) if args.peer == "kbroker" else peers.Kafka4(workdir)
    peer.install()
    peer.start()
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    try:
        result = soak(peer, args.duration, args.interval, args.idle)
    finally:
        peer.stop()
    result.update(peer=args.peer, version=peer.version, load_average_before=load_before,
                  load_average_after=os.getloadavg(),
                  summary=summary(result), started=started)
    Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(result, f"{args.peer} ({peer.version})")
    Path(args.out + ".md").write_text(md)
    print(md)
    print(json.dumps(result["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The cluster rows (issue 15): a 3-broker kbroker cluster against a single kbroker broker in the same run.

    python bench/cluster.py [--quick] [--runs N] [--out bench/results/cluster]

Three ways to run the brokers (``--modes``): in-process (``kbroker.embedded.Broker``, ``brokers=3`` or one
broker, segment storage, each on a thread of this process), ``serve`` (``kbroker serve --brokers 3`` as one
process, driven through its HTTP control plane) and ``processes`` (three ``kbroker serve --node-id N --cluster
postgresql://...`` processes over a throwaway PostgreSQL server, tests/support/postgres.py, each cluster in a
database of its own; the single broker is ``kbroker serve``; a leader is killed with SIGKILL). Every client
is a process of its own (bench/client.py), as in the other sections.

- **produce**: 100 B and 10 KiB records (1,000,000 and 50,000; quick: 300,000 and 10,000) into a new one-partition topic, acks=all,
  the confluent-kafka producer of the produce section (``linger.ms=5``, ``batch.size`` 1 MiB); against a single
  broker, and against the cluster with replication factor 1 and 3 (``min.insync.replicas=2``). A fresh broker
  or cluster for every row. The ratio RF3/single per row; the aim is at least 0.5.
- **failover**: a producer (acks=all, idempotent, ``linger.ms=0``) sends 1,000 x 100 B a second into a
  partition of replication factor 3; once it has an acknowledgement, the partition's leader is killed
  (``kill_broker``: connections dropped, nothing flushed). The figure is the time from the kill to the next
  acknowledgement (after the kill call returned, so from the new leader); the first acknowledgement of a
  record sent after the kill is recorded too (it adds the producer's own queueing on a loaded machine).
  The aim is under 2 s in one process, under 6 s as processes (the controller notices a dead broker when
  its database session ends).

``run.py --workloads cluster`` runs it after the other sections and writes ``<out>/cluster.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import workloads  # noqa: E402
from workloads import LARGE, SMALL  # noqa: E402

CLUSTER_BROKERS = 3
FAILOVER_RATE = 1000        # records a second
FAILOVER_AIM_S = 2.0
PROCESSES_FAILOVER_AIM_S = 6.0
RATIO_AIM = 0.5
# Records per produce row. Quick mode takes more than run.py's quick counts (100,000 x 100 B take 0.1 s, too
# short to tell one setup from another) and still stays within half a minute for both modes.
FULL_COUNTS = ((SMALL, workloads.FULL.small_count), (LARGE, workloads.FULL.large_count))
QUICK_COUNTS = ((SMALL, 300_000), (LARGE, 10_000))
# (row key, label, brokers, replication factor)
SETUPS = [("single", "single broker", 1, 1), ("rf1", "3 brokers, RF 1", CLUSTER_BROKERS, 1),
          ("rf3", "3 brokers, RF 3", CLUSTER_BROKERS, 3)]


class ServedCluster:
    """``kbroker serve --brokers N`` as a process of its own, driven through its HTTP control plane; the same
    methods as ``kbroker.embedded.Broker`` that this file uses."""

    def __init__(self, brokers: int):
        self.dir = Path(tempfile.mkdtemp(prefix="kbroker-cluster-serve-"))
        self.log = self.dir / "serve.log"
        cmd = [sys.executable, "-m", "kbroker", "serve", "--port", "0", "--data-dir", str(self.dir / "data"),
               "--brokers", str(brokers)] + (["--control-port", "0"] if brokers > 1 else [])
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(BENCH_DIR.parent))
        self.control = None
        ports: list[str] = []
        deadline = time.monotonic() + 60
        # The ready lines: one "kbroker listening on host:port" per broker, then the cluster's control plane.
        while len(ports) < brokers or (brokers > 1 and self.control is None):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"kbroker serve did not start: {self.log.read_text(errors='replace')[-400:]}")
            time.sleep(0.02)
            text = self.log.read_text(errors="replace")
            ports = re.findall(r"^kbroker listening on (127\.0\.0\.1:\d+)$", text, re.M)
            m = re.search(r"^kbroker control plane on (http://\S+?)/? ", text, re.M)
            self.control = m.group(1) if m else None
        self.bootstrap_servers = ",".join(ports)

    def _post(self, path: str, body: dict | None = None, timeout_s: float = 60.0) -> bool:
        req = urllib.request.Request(self.control + path, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s):
                return True
        except urllib.error.HTTPError as e:
            if e.code == 408:
                return False
            raise

    def kill_broker(self, node_id: int) -> None:
        self._post(f"/brokers/{node_id}/kill")

    def wait_for_leaders(self, timeout_s: float = 10.0, full_isr: bool = False) -> bool:
        return self._post("/wait", {"full_isr" if full_isr else "leaders": True, "timeout_ms": int(timeout_s * 1000)},
                          timeout_s + 10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class ProcessesCluster:
    """Brokers as processes over PostgreSQL (``kbroker serve --node-id N --cluster URL``), or one ``kbroker
    serve`` for a single broker; the methods of ``kbroker.embedded.Broker`` this file uses, answered from
    Metadata (kill: SIGKILL)."""

    _pg = None  # one throwaway PostgreSQL server for the whole run, a database per cluster

    def __init__(self, brokers: int):
        sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
        from support.brokerproc import BrokerProcess

        self.dir = Path(tempfile.mkdtemp(prefix="kbroker-cluster-procs-"))
        if brokers == 1:
            self.procs = {1: BrokerProcess(self.dir / "single")}
        else:
            url = self.postgres().new_database()
            self.procs = {n: BrokerProcess(self.dir / f"broker-{n}", "--node-id", str(n), "--cluster", url)
                          for n in range(1, brokers + 1)}
        try:
            for p in self.procs.values():
                p.start(timeout=60)
            self.bootstrap_servers = ",".join(p.bootstrap_servers for p in self.procs.values())
            if not self._wait(lambda md: len(md.brokers) == len(self.procs), 30.0):
                raise RuntimeError("the brokers did not all register within 30 s")
        except BaseException:
            self.stop()
            raise

    @classmethod
    def postgres(cls):
        if cls._pg is None:
            sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
            import atexit

            from support.postgres import PostgresServer
            cls._pg = PostgresServer().start()
            atexit.register(cls._pg.stop)
        return cls._pg

    def _wait(self, condition, timeout_s: float) -> bool:
        from confluent_kafka.admin import AdminClient
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            live = ",".join(p.bootstrap_servers for p in self.procs.values() if p.proc is not None)
            try:
                if condition(AdminClient({"bootstrap.servers": live, "log_level": 3}).list_topics(timeout=5)):
                    return True
            except Exception:  # noqa: BLE001  a broker going away: ask again
                pass
            time.sleep(0.05)
        return False

    def kill_broker(self, node_id: int) -> None:
        self.procs[node_id].kill()

    def wait_for_leaders(self, timeout_s: float = 10.0, full_isr: bool = False) -> bool:
        live = {n for n, p in self.procs.items() if p.proc is not None}

        def ready(md) -> bool:
            parts = [p for t in md.topics.values() for p in t.partitions.values()]
            return bool(parts) and all(p.leader in live and (not full_isr or sorted(p.isrs) == sorted(p.replicas))
                                       for p in parts)
        return self._wait(ready, timeout_s)

    def stop(self) -> None:
        for p in self.procs.values():
            try:
                p.stop(30)
            except Exception:  # noqa: BLE001
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _start(brokers: int, mode: str = "in-process"):
    if mode == "serve":
        return ServedCluster(brokers)
    if mode == "processes":
        return ProcessesCluster(brokers)
    from kbroker.embedded import Broker
    b = Broker(port=0, brokers=brokers)
    b.start()
    return b


def _create_topic(bootstrap: str, topic: str, rf: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    config = {"min.insync.replicas": "2"} if rf >= 3 else {}
    admin.create_topics([NewTopic(topic, 1, rf, config=config)])[topic].result(30)


def _leader(bootstrap: str, topic: str) -> int:
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3}).list_topics(topic, timeout=10)
    return md.topics[topic].partitions[0].leader


def produce_row(brokers: int, rf: int, size: int, count: int, log_dir: Path, mode: str) -> dict:
    b = _start(brokers, mode)
    try:
        topic = f"cluster-{uuid.uuid4().hex[:8]}"
        _create_topic(b.bootstrap_servers, topic, rf)
        if brokers > 1 and not b.wait_for_leaders(30.0, full_isr=True):
            return {"error": "no full ISR within 30 s of CreateTopics"}
        spec = {"bootstrap": b.bootstrap_servers, "topic": topic, "count": count, "size": size, "acks": "all",
                "deadline_s": 30 + count / (2000 if size == SMALL else 200)}
        return workloads.client("produce", spec, log_dir)
    finally:
        b.stop()


def failover(seconds: float, log_dir: Path, mode: str) -> dict:
    """Kill the leader of a replication-factor-3 partition under a steady acks=all producer."""
    b = _start(CLUSTER_BROKERS, mode)
    log = log_dir / f"client-failover-{uuid.uuid4().hex[:6]}.log"
    try:
        topic = f"failover-{uuid.uuid4().hex[:8]}"
        _create_topic(b.bootstrap_servers, topic, 3)
        if not b.wait_for_leaders(30.0, full_isr=True):
            return {"error": "no full ISR within 30 s of CreateTopics"}
        spec = {"bootstrap": b.bootstrap_servers, "topic": topic, "rate": FAILOVER_RATE, "seconds": seconds,
                "deadline_s": seconds + 60}
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, str(BENCH_DIR / "client.py"), "steady_produce", json.dumps(spec)],
                                    stdout=subprocess.PIPE, stderr=err, text=True)
            try:
                first = proc.stdout.readline()
                if first.strip() != "acked":
                    out, _ = proc.communicate(timeout=spec["deadline_s"])
                    return {"error": f"producer never acknowledged: {(first + out)[-300:]}"}
                time.sleep(1.0)  # a second of steady acknowledgements before the kill
                leader = _leader(b.bootstrap_servers, topic)
                kill_ns = time.monotonic_ns()
                b.kill_broker(leader)
                killed_ns = time.monotonic_ns()  # the kill has taken effect: no ack from the old leader after it
                t_kill = time.perf_counter()
                elected = b.wait_for_leaders(30.0)
                elect_s = time.perf_counter() - t_kill
                out, _ = proc.communicate(timeout=spec["deadline_s"])
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        result = json.loads(out.strip().splitlines()[-1])
    finally:
        b.stop()
    sent, acked = result.pop("sent_ns", []), result.pop("acked_ns", [])
    after = [a for a in acked if a > killed_ns]
    sent_after = [a for s, a in zip(sent, acked) if s >= killed_ns]
    result.update(killed=leader, leader_elected=elected, kill_call_s=round((killed_ns - kill_ns) / 1e9, 4),
                  election_s=round(elect_s, 4), acknowledged=len(acked), acknowledged_after_kill=len(after))
    if not after or not sent_after:
        result.setdefault("error", "no record was acknowledged after the kill")
    else:
        # From the start of the kill to the next acknowledgement (necessarily from the new leader), and to the
        # first acknowledgement of a record sent after the kill (which adds the producer's own queueing).
        result["kill_to_next_ack_s"] = round((min(after) - kill_ns) / 1e9, 4)
        result["kill_to_ack_of_record_sent_after_s"] = round((min(sent_after) - kill_ns) / 1e9, 4)
    return result


MODES = {"in-process": "brokers on threads of the bench process (kbroker.embedded.Broker)",
         "serve": "`kbroker serve --brokers 3` (and `kbroker serve` for the single broker) as a process, "
                  "the leader killed through its HTTP control plane",
         "processes": "three `kbroker serve --node-id N --cluster postgresql://...` processes over a throwaway "
                      "PostgreSQL (and `kbroker serve` for the single broker), the leader killed with SIGKILL"}
FAILOVER_AIMS = {"processes": PROCESSES_FAILOVER_AIM_S}


def run_mode(mode: str, quick: bool, runs: int, log_dir: Path, say) -> dict:
    rows = []
    for size, count in (QUICK_COUNTS if quick else FULL_COUNTS):
        row = {"size": size, "count": count}
        for key, label, brokers, rf in SETUPS:
            samples = []
            for _ in range(runs):
                say(f"cluster ({mode}): produce {count:,} x {size} B, {label} ...")
                try:
                    r = produce_row(brokers, rf, size, count, log_dir, mode)
                except Exception as e:  # noqa: BLE001  a failed cell is reported, the run goes on
                    r = {"error": f"{type(e).__name__}: {e}"}
                samples.append(r)
                say(f"  {r.get('msgs_per_s', 0):,.0f} msg/s" if "error" not in r else f"  error: {r['error']}")
            values = [r["msgs_per_s"] for r in samples if "error" not in r]
            row[key] = {"msgs_per_s": statistics.median(values) if values else None,
                        "runs": [r.get("msgs_per_s") for r in samples],
                        **({"error": next(r["error"] for r in samples if "error" in r)}
                           if len(values) < len(samples) else {})}
        single, rf3 = row["single"]["msgs_per_s"], row["rf3"]["msgs_per_s"]
        row["ratio_rf3_single"] = round(rf3 / single, 3) if single and rf3 else None
        rows.append(row)
    fails = []
    for _ in range(runs):
        say(f"cluster ({mode}): failover (kill the leader under an acks=all producer) ...")
        try:
            r = failover(3.0 if quick else 10.0, log_dir, mode)
        except Exception as e:  # noqa: BLE001
            r = {"error": f"{type(e).__name__}: {e}"}
        say(f"  kill to next acknowledged record: {r.get('kill_to_next_ack_s')} s" if "error" not in r
            else f"  error: {r['error']}")
        fails.append(r)
    times = [r["kill_to_next_ack_s"] for r in fails if "kill_to_next_ack_s" in r]
    return {"how": MODES[mode], "produce": rows,
            "failover": {"kill_to_next_ack_s": statistics.median(times) if times else None, "runs": fails}}


def _postgres_available() -> bool:
    sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
    from support.postgres import binaries
    return binaries() is not None


def run(quick: bool, runs: int, log_dir: Path, say, modes=tuple(MODES)) -> dict:
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    if "processes" in modes and not _postgres_available():
        say("cluster: no PostgreSQL server binaries (make install installs them): the processes rows are left out")
        modes = [m for m in modes if m != "processes"]
    load_start = list(os.getloadavg())
    per_mode = {mode: run_mode(mode, quick, runs, log_dir, say) for mode in modes}
    return {"mode": "quick" if quick else "full", "runs": runs, "started": started, "load_average_start": load_start,
            "load_average": list(os.getloadavg()), "modes": per_mode}


def markdown(result: dict) -> str:
    la, ls = result.get("load_average") or [], result.get("load_average_start") or []
    out = [f"# kbroker cluster: {CLUSTER_BROKERS} brokers against one broker",
           "", f"{result['mode']} run, {result['runs']} run(s) per figure (median), {result['started']}; "
           f"load average (1/5/15 min; the machine is shared) {' / '.join(f'{x:.1f}' for x in ls)} at the start, "
           f"{' / '.join(f'{x:.1f}' for x in la)} at the end."]

    def cell(c):
        return f"{c['msgs_per_s']:,.0f} msg/s" if c.get("msgs_per_s") else f"error: {c.get('error', '?')[:80]}"
    for mode, m in result["modes"].items():
        out += ["", f"### {mode}: {m['how']}", "",
                "| produce, acks=all, 1 partition | single broker | 3 brokers, RF 1 | 3 brokers, RF 3 "
                f"(min.insync.replicas=2) | RF 3 / single (aim >= {RATIO_AIM}) |", "|---|---:|---:|---:|---:|"]
        for row in m["produce"]:
            label = f"{row['count']:,} x {'100 B' if row['size'] == SMALL else '10 KiB'}"
            ratio = row["ratio_rf3_single"]
            out.append(f"| {label} | {cell(row['single'])} | {cell(row['rf1'])} | {cell(row['rf3'])} | "
                       f"{f'{ratio:.2f}x' if ratio is not None else '-'} |")
        f = m["failover"]
        out += ["", f"| failover, RF 3, min.insync.replicas=2, {FAILOVER_RATE:,} x 100 B/s, acks=all, idempotent | "
                f"value (aim < {FAILOVER_AIMS.get(mode, FAILOVER_AIM_S):g} s) |", "|---|---:|",
                f"| kill the leader -> next acknowledged record (median) | {f['kill_to_next_ack_s']:.3f} s |"
                if f["kill_to_next_ack_s"] is not None else "| kill the leader -> next acknowledged record | error |"]
        for i, r in enumerate(f["runs"], 1):
            if "kill_to_next_ack_s" not in r:
                out.append(f"| run {i} | error: {r.get('error', '?')[:100]} |")
            else:
                out.append(f"| run {i}: next ack / ack of a record sent after the kill / controller's new leader "
                           f"after / failed records | {r['kill_to_next_ack_s']:.3f} s / "
                           f"{r['kill_to_ack_of_record_sent_after_s']:.3f} s / {r['election_s']:.3f} s / {r['failed']} |")
    return "\n".join(out) + "\n"


def summary(result: dict) -> str:
    """The tables of ``markdown`` without its title, for run.py's report."""
    return markdown(result).split("\n", 2)[2].strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="300,000 x 100 B and 10,000 x 10 KiB, 1 run")
    ap.add_argument("--runs", type=int, default=None, help="runs per figure (default 3, quick 1)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {','.join(MODES)} (default all)")
    ap.add_argument("--out", default=str(BENCH_DIR / "results" / "cluster"), help="results stem (.json, .md)")
    args = ap.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="kbroker-cluster-bench-"))
    result = run(args.quick, args.runs or (1 if args.quick else 3), log_dir,
                 lambda m: print(m, file=sys.stderr, flush=True), [m for m in args.modes.split(",") if m])
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

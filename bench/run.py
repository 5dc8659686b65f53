"""kbroker's benchmark suite (issue #8): kbroker against the Kafka-compatible brokers the package
registries provide, with the same confluent-kafka workloads, in one run.

    python bench/run.py                  full counts, 3 runs, every broker
    python bench/run.py --quick          small counts, 1 run (a few minutes on 2 cores)
    python bench/run.py --runs 5 --peers kbroker,tansu --workloads produce,consume
    python bench/run.py --profile        also py-spy profiles of kbroker under produce and consume

Brokers are run one at a time, each run going through every broker in turn (so slow drift of the
machine spreads over all of them); each figure is the median over the runs. A broker that cannot be
installed or started is reported as skipped with the reason; the run goes on. Results go to
bench/results/: <mode>.json, <mode>.md, <mode>.png and the same as latest.*.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers as peers_mod  # noqa: E402
import report  # noqa: E402
import workloads  # noqa: E402
from peers import PeerUnavailable  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
SECTIONS = ["produce", "consume", "latency", "lifecycle", "connections", "kafka-python", "codec", "scale", "soak", "cluster"]
# The scale section (scale.py) runs on the brokers that keep topics on disk across a kill -9 and answer
# CreateTopics; the others get its rows skipped with this reason.
SCALE_PEERS = {"kbroker", "kafka-4"}


def say(msg: str) -> None:
    print(msg, flush=True)


def cpu_busy(interval_s: float = 1.0) -> float:
    """Share of all cores busy over ``interval_s``, from /proc/stat (our brokers are stopped then)."""
    def read():
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = f[3] + f[4]
        return sum(f), idle
    t1, i1 = read()
    time.sleep(interval_s)
    t2, i2 = read()
    return 1.0 - (i2 - i1) / max(1, t2 - t1)


def wait_quiet(max_wait_s: float, threshold: float = 0.25) -> float:
    """Wait (at most ``max_wait_s``) until other work on the machine leaves it mostly idle; returns the
    busy share seen last. The machine is shared, so this is best effort and recorded with the results."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = cpu_busy()
        if busy <= threshold or time.monotonic() > deadline:
            return busy


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    info["load_average_at_start"] = os.getloadavg()
    import confluent_kafka
    import kafka
    info["confluent_kafka"] = peers_mod.client_version()
    info["librdkafka"] = confluent_kafka.libversion()[0]
    info["kafka_python"] = kafka.__version__
    try:
        import uvloop
        info["uvloop"] = uvloop.__version__
    except ImportError:
        info["uvloop"] = None
    java = shutil.which("java")
    if java:
        info["java"] = subprocess.run([java, "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    return info


def run_scale(peer, sizes, record, say) -> None:
    """The scale rows (scale.py) for each topic count on a fresh instance of ``peer``."""
    import scale
    keys = [f"scale.{key}.{n}" for n in sizes.scale_topics for key, *_ in scale.ROWS]
    if peer.name not in SCALE_PEERS:
        for key in keys:
            record(key, None, {"skipped": "scale rows are run on kbroker and Kafka 4.4 only"})
        return
    for n in sizes.scale_topics:
        try:
            result = scale.run(n, peer, set(), say)
        except Exception as e:  # noqa: BLE001  a failed row is reported, the run goes on
            say(f"  scale {n} failed: {type(e).__name__}: {e}")
            peer.stop()
            for key, *_ in scale.ROWS:
                record(f"scale.{key}.{n}", None, {"error": f"{type(e).__name__}: {e}"})
            continue
        for key, value in scale.row_values(result).items():
            record(key, value, {"until_leaders_s": result["create"]["until_leaders_s"]} if ".create." in key else {})


def run_soak(workdir: Path, out_dir: Path, duration: float, say) -> dict:
    """The soak run (soak.py) against a fresh kbroker; its rows go to <out>/soak.{json,md}, its summary
    into the report."""
    import soak
    say(f"soak: {duration:.0f} s of well-behaved and hostile clients against kbroker ...")
    peer = peers_mod.KBroker(workdir, "segment", control=True)  # its /metrics: the event loop's lag
    try:
        peer.install()
        peer.start()
        result = soak.soak(peer, duration, max(10.0, duration / 20), 300, say)
    except Exception as e:  # noqa: BLE001  a failed soak is reported, the run goes on
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        peer.stop()
    result.update(peer="kbroker", version=peer.version, summary=soak.summary(result))
    (out_dir / "soak.json").write_text(json.dumps(result, indent=1))
    (out_dir / "soak.md").write_text(soak.markdown(result, f"kbroker ({peer.version})"))
    return {"summary": result["summary"], "rows": "soak.json"}


def run_cluster(out_dir: Path, quick: bool, runs: int, log_dir: Path, say) -> dict:
    """The cluster rows (cluster.py): a 3-broker in-process kbroker cluster against one kbroker broker; its
    rows go to <out>/cluster.{json,md}, its summary into the report."""
    import cluster
    try:
        result = cluster.run(quick, runs, log_dir, say)
    except Exception as e:  # noqa: BLE001  a failed cluster section is reported, the run goes on
        say(f"  cluster failed: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}"}
    (out_dir / "cluster.json").write_text(json.dumps(result, indent=1))
    (out_dir / "cluster.md").write_text(cluster.markdown(result))
    return {"summary": cluster.summary(result), "rows": "cluster.json"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts and 1 run (unless --runs is given)")
    ap.add_argument("--runs", type=int, default=None, help="runs per figure; the median is reported (default 3, quick 1)")
    ap.add_argument("--peers", default=",".join(peers_mod.PEER_NAMES),
                    help=f"comma-separated brokers (default all: {','.join(peers_mod.PEER_NAMES)})")
    ap.add_argument("--workloads", default=",".join(SECTIONS), help=f"comma-separated sections (default all: {','.join(SECTIONS)})")
    ap.add_argument("--profile", action="store_true", help="profile kbroker with py-spy under produce and consume")
    ap.add_argument("--max-wait", type=float, default=60.0,
                    help="before each broker's run, wait up to this many seconds for other load to drop (default 60)")
    ap.add_argument("--client-set", metavar="KEY=VALUE", action="append", default=[],
                    help="a confluent-kafka setting for every client of every broker, e.g. fetch.queue.backoff.ms=0")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results directory (default bench/results)")
    ap.add_argument("--name", default=None, help="results file stem (default: quick or full)")
    args = ap.parse_args(argv)

    sizes = workloads.QUICK if args.quick else workloads.FULL
    runs = args.runs or (1 if args.quick else 3)
    mode = "quick" if args.quick else "full"
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    sections = {s.strip() for s in args.workloads.split(",") if s.strip()}
    unknown = [p for p in wanted if p not in peers_mod.PEER_NAMES] + [s for s in sections if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown: {', '.join(unknown)}")
    client_set = dict(item.split("=", 1) for item in args.client_set)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="kbroker-bench-"))
    log_dir = workdir / "logs"
    log_dir.mkdir()
    started = time.time()

    say(f"kbroker bench: {mode}, {runs} run(s), peers {','.join(wanted)}; scratch {workdir}")
    meta = {"mode": mode, "runs": runs, "sizes": sizes.__dict__, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": machine(), "sections": sorted(sections), "client_set": client_set}
    metric_list = [m for m in workloads.metrics(sizes) if m.section in sections]
    all_peers = {p.name: p for p in peers_mod.all_peers(workdir)}
    peer_info, active = {}, []
    for name in wanted:
        peer = all_peers[name]
        say(f"installing {name} ...")
        try:
            peer.install()
            peer_info[name] = {"status": "ran", "version": peer.version, "description": peer.description,
                               "notes": peer.notes, "startup_note": peer.startup_note}
            active.append(peer)
        except Exception as e:  # noqa: BLE001  any failure to get a peer is a skip, never a failed run
            peer_info[name] = {"status": "skipped", "reason": str(e), "description": peer.description}
            say(f"  skipped: {e}")

    # samples[peer][metric] = list of (value or None, detail)
    samples: dict[str, dict[str, list]] = {p.name: {} for p in active}
    bench_sections = sections - {"codec", "scale", "soak", "cluster"}
    for run in range(runs):
        for peer in active:
            if peer_info[peer.name]["status"] != "ran":
                continue
            busy = wait_quiet(args.max_wait)
            meta.setdefault("cpu_busy_before_runs", {}).setdefault(peer.name, []).append(round(busy, 2))
            say(f"run {run + 1}/{runs}: {peer.name} (machine {busy:.0%} busy before it)")

            def record(key, value, detail, _p=peer.name):
                samples[_p].setdefault(key, []).append((value, detail))

            suite = workloads.Suite(peer, sizes, record, log_dir, say, only=bench_sections, client_set=client_set)
            for phase in ("lifecycle", "workloads"):
                if phase == "lifecycle" and "lifecycle" not in bench_sections:
                    continue
                if phase == "workloads" and not (bench_sections - {"lifecycle"}):
                    continue
                try:
                    getattr(suite, phase)()
                except PeerUnavailable as e:
                    if run == 0 and phase == "lifecycle" or not samples[peer.name]:
                        peer_info[peer.name].update(status="skipped", reason=f"could not be started: {e}")
                        say(f"  skipped: {e}")
                        break
                    record(f"_{phase}_error", None, {"error": str(e)})
                    say(f"  {phase} failed: {e}")
                except Exception as e:  # noqa: BLE001
                    record(f"_{phase}_error", None, {"error": f"{type(e).__name__}: {e}"})
                    say(f"  {phase} failed: {type(e).__name__}: {e}")
                    peer.stop()
            if "scale" in sections and peer_info[peer.name]["status"] == "ran":
                run_scale(peer, sizes, record, say)

    results = {}
    for name, per_metric in samples.items():
        results[name] = {}
        for m in metric_list:
            got = per_metric.get(m.key, [])
            values = [v for v, _ in got if v is not None]
            cell = {"runs": [v for v, _ in got]}
            if values:
                cell["median"] = statistics.median(values)
            else:
                reasons = [d.get("skipped") or d.get("error") for _, d in got if d.get("skipped") or d.get("error")]
                if reasons and all(d.get("skipped") for _, d in got):
                    cell["skipped"] = reasons[0]
                elif reasons:
                    cell["error"] = reasons[0]
                elif peer_info[name]["status"] != "ran":
                    cell["skipped"] = peer_info[name].get("reason", "")
                else:
                    cell["error"] = "not measured"
            details = [d for _, d in got if d]
            if details:
                cell["details"] = details
            results[name][m.key] = cell
        for key in ("_lifecycle_error", "_workloads_error"):
            if key in per_metric:
                results[name][key] = [d for _, d in per_metric[key]]

    codec = None
    if "codec" in sections:
        say("codec micro-benchmark ...")
        import codec_bench
        try:
            codec = codec_bench.bench()
        except Exception as e:  # noqa: BLE001
            codec = {"error": f"{type(e).__name__}: {e}"}

    soak_result = None
    if "soak" in sections and "kbroker" in [p.name for p in active]:
        soak_result = run_soak(workdir, out_dir, 60.0 if args.quick else 600.0, say)

    cluster_result = None
    if "cluster" in sections and "kbroker" in [p.name for p in active]:
        cluster_result = run_cluster(out_dir, args.quick, runs, log_dir, say)

    profile = None
    if args.profile:
        import profile_kbroker
        say("profiling kbroker with py-spy ...")
        profile = profile_kbroker.profile(workdir, log_dir, workloads.FULL, say)  # enough samples even in --quick

    for p in active:
        if getattr(p, "versions_seen", None) and peer_info[p.name].get("status") == "ran":
            peer_info[p.name]["versions_seen"] = p.versions_seen
    meta["duration_s"] = round(time.time() - started, 1)
    data = {"meta": meta, "peers": peer_info, "metrics": [m.__dict__ for m in metric_list], "results": results,
            "codec": codec, "profile": profile, "soak": soak_result,
            "cluster": cluster_result}
    stem = args.name or mode
    (out_dir / f"{stem}.json").write_text(json.dumps(data, indent=1, default=str))
    md = report.markdown(data)
    (out_dir / f"{stem}.md").write_text(md)
    png_ok = report.chart(data, out_dir / f"{stem}.png")
    for ext in ("json", "md") + (("png",) if png_ok else ()):
        shutil.copyfile(out_dir / f"{stem}.{ext}", out_dir / f"latest.{ext}")
    say(md)
    say(f"wrote {out_dir}/{stem}.json, .md{', .png' if png_ok else ''} (and latest.*) in {meta['duration_s']:.0f} s")
    for p in active:
        p.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where kbroker spends its time under load: py-spy attached to the broker process per workload.

    python bench/profile_kbroker.py [--quick]     (run.py --profile calls profile() the same way)

A fresh kbroker (segment storage, as `make run` serves) takes, in turn, with three times the
mode's counts and consumers without the client-side fetch backoff (CONSUMER_CONF): 100 B records
produced into 12 partitions, the same consumed by assign, 10 KiB records produced into 1 partition, the same
consumed. For each phase py-spy samples the broker (500 Hz, idle threads not sampled) only while that
workload's client runs; the collapsed stacks are kept in bench/results/profile/ and summarised as
the functions with the most samples on top of the stack ("self") and anywhere on it ("total"),
as percentages of the samples. ``busy`` is samples / (rate x seconds): how much of the wall time the
broker's thread was running Python rather than waiting in the event loop.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402
from peers import KBroker  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RATE_HZ = 500
_LINE = re.compile(r":\d+\)$")


def _py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else None


def summarise(collapsed: str, top: int = 15) -> dict:
    self_counts: collections.Counter = collections.Counter()
    total_counts: collections.Counter = collections.Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_LINE.sub(")", f) for f in stack.split(";")]
        self_counts[frames[-1]] += n
        for f in set(frames):
            total_counts[f] += n
    def pct(counter):
        return [[f, round(100.0 * c / samples, 1)] for f, c in counter.most_common(top)] if samples else []
    # "total" without the frames every sample has (runpy, cli, the event loop's run)
    total = [(f, c) for f, c in total_counts.most_common() if c < samples * 0.98]
    return {"samples": samples, "self": pct(self_counts),
            "total": [[f, round(100.0 * c / samples, 1)] for f, c in total[:top]] if samples else []}


# The consumer's fetch backoff (librdkafka waits fetch.queue.backoff.ms, 1 s, once 100,000 records are
# queued) would leave the broker idle most of the time; profiles are about the broker, so it is off.
CONSUMER_CONF = {"fetch.queue.backoff.ms": 0}


def profile(workdir: Path, log_dir: Path, sizes: workloads.Sizes, say, out_dir: Path | None = None) -> dict:
    spy = _py_spy()
    if not spy:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    out_dir = out_dir or BENCH_DIR / "results" / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    peer = KBroker(workdir, "segment")
    peer.install()
    peer.start()
    phases = []
    try:
        small, large = 3 * sizes.small_count, 3 * sizes.large_count  # enough samples at 500 Hz
        t_small = f"prof-small-{int(time.time())}"
        t_large = f"prof-large-{int(time.time())}"
        peer.create_topic(t_small, 12)
        peer.create_topic(t_large, 1)
        base = {"bootstrap": peer.bootstrap, "client_conf": {}, "kafka_python_conf": {}}
        plan = [
            ("produce-100B-p12", "produce", dict(topic=t_small, count=small, size=100, acks="1",
                                                 deadline_s=workloads._deadline(small, 10000))),
            ("consume-100B-p12", "consume", dict(topic=t_small, count=small, mode="assign", group="prof1",
                                                 client_conf=CONSUMER_CONF,
                                                 deadline_s=workloads._deadline(small, 10000))),
            ("produce-10KiB-p1", "produce", dict(topic=t_large, count=large, size=10240, acks="1",
                                                 deadline_s=workloads._deadline(large, 1000))),
            ("consume-10KiB-p1", "consume", dict(topic=t_large, count=large, mode="assign", group="prof2",
                                                 client_conf=CONSUMER_CONF,
                                                 deadline_s=workloads._deadline(large, 1000))),
        ]
        for name, workload, spec in plan:
            raw = out_dir / f"{name}.collapsed"
            spy_log = open(log_dir / f"py-spy-{name}.log", "wb")
            spy_proc = subprocess.Popen([spy, "record", "--pid", str(peer.proc.pid), "--rate", str(RATE_HZ),
                                         "--format", "raw", "-o", str(raw)], stdout=spy_log, stderr=subprocess.STDOUT)
            time.sleep(1.0)  # py-spy attaches
            t0 = time.perf_counter()
            res = workloads.client(workload, {**base, **spec}, log_dir)
            seconds = time.perf_counter() - t0
            spy_proc.send_signal(signal.SIGINT)
            try:
                spy_proc.wait(30)
            except subprocess.TimeoutExpired:
                spy_proc.kill()
            spy_log.close()
            text = raw.read_text() if raw.exists() else ""
            summary = summarise(text)
            summary.update(phase=name, client=res, seconds=round(seconds, 2),
                           busy=round(summary["samples"] / (RATE_HZ * seconds), 2) if seconds else None,
                           collapsed=str(raw.relative_to(BENCH_DIR)) if raw.exists() else None)
            phases.append(summary)
            say(f"  {name}: {workloads._fmt(res, 'msgs_per_s')} msg/s, {summary['samples']} samples; "
                f"top self: {summary['self'][:3]}")
    finally:
        peer.stop()
    return {"tool": f"py-spy record --rate {RATE_HZ} --format raw (idle not sampled)", "phases": phases,
            "kbroker": peer.version, "client_conf": CONSUMER_CONF}


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    wd = Path(tempfile.mkdtemp(prefix="kbroker-prof-"))
    (wd / "logs").mkdir()
    result = profile(wd, wd / "logs", workloads.QUICK if quick else workloads.FULL, print)
    import report
    out = BENCH_DIR / "results" / "profile"
    (out / "profile.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "profile.md").write_text("\n".join(["# kbroker under py-spy", ""] + report.profile_markdown(result)) + "\n")
    print(f"wrote {out}/profile.json and profile.md")
    shutil.rmtree(wd, ignore_errors=True)

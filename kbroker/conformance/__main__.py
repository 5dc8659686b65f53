"""``python -m kbroker.conformance``: record Kafka's answers, or score a broker against them.

    python -m kbroker.conformance record             start real Kafka, run every scenario, write recorded/
    python -m kbroker.conformance run HOST:PORT      the table for a broker against the recorded answers
    python -m kbroker.conformance live [HOST:PORT]   the same against a real Kafka started now
                                                     (without HOST:PORT: a kbroker started here)

With ``--cluster`` (record, live): the cluster scenarios, against a Kafka of three brokers and a controller
(realkafka.RealKafkaCluster) and a kbroker cluster of three started here (``Broker(brokers=3)``).
"""

from __future__ import annotations

import argparse
import sys
import time


def record(args) -> int:
    from .realkafka import KAFKA_VERSION, KafkaUnavailable, RealKafka
    from .runner import run_all, save_recorded

    if args.cluster:
        return record_cluster(args)
    try:
        with RealKafka(secure=True) as k:
            t0 = time.perf_counter()
            answers = run_all(k.bootstrap, args.only, sasl_bootstrap=k.sasl_bootstrap)
            took = time.perf_counter() - t0
    except KafkaUnavailable as e:
        print(f"conformance: real Kafka unavailable: {e}", file=sys.stderr)
        return 2
    if args.only:
        from .runner import load_recorded

        merged = load_recorded()
        merged.update(answers)
        answers = merged
    path = save_recorded(answers)
    print(f"recorded {len(answers)} scenario runs of Kafka {KAFKA_VERSION} in {took:.1f} s into {path}")
    return 0


def kafka_cluster_answers(only: str | None) -> tuple[dict, float]:
    """Kafka's answers to the cluster scenarios and the seconds they took (KafkaUnavailable raised)."""
    from .realkafka import RealKafkaCluster
    from .runner import run_cluster

    with RealKafkaCluster(3) as c:
        print(f"a Kafka cluster of 3 brokers and a controller: started in {c.format_s + c.start_s:.1f} s",
              file=sys.stderr)
        t0 = time.perf_counter()
        return run_cluster(c, only, progress=lambda k: print(f"  {k}", file=sys.stderr)), time.perf_counter() - t0


def record_cluster(args) -> int:
    from .realkafka import KAFKA_VERSION, KafkaUnavailable
    from .runner import load_recorded, save_recorded

    try:
        answers, took = kafka_cluster_answers(args.only)
    except KafkaUnavailable as e:
        print(f"conformance: real Kafka unavailable: {e}", file=sys.stderr)
        return 2
    if args.only:
        merged = load_recorded(cluster=True)
        merged.update(answers)
        answers = merged
    path = save_recorded(answers, cluster=True)
    print(f"recorded {len(answers)} cluster scenario runs of Kafka {KAFKA_VERSION} in {took:.1f} s into {path}")
    return 0


def live_cluster(args) -> int:
    """The cluster scenarios against a Kafka cluster started now and a kbroker cluster started here."""
    import tempfile

    from .realkafka import KafkaUnavailable
    from .runner import (KbrokerClusterNodes, compare_runs, kbroker_cluster_for_conformance, load_recorded,
                         run_cluster, table)

    try:
        theirs, took = kafka_cluster_answers(args.only)
    except KafkaUnavailable as e:
        print(f"conformance: real Kafka unavailable: {e}", file=sys.stderr)
        return 2
    from .runner import recorded_path

    recorded = load_recorded(cluster=True) if recorded_path(cluster=True).exists() else {}
    drift = sorted({key for key in theirs if theirs[key] != recorded.get(key)})
    if drift:
        print(f"Kafka's answers differ from the recording (make conformance-record) in: {', '.join(drift)}",
              file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="kbroker-conformance-") as data, \
            kbroker_cluster_for_conformance(data) as b:
        t0 = time.perf_counter()
        ours = run_cluster(KbrokerClusterNodes(b), args.only)
        ours_took = time.perf_counter() - t0
    outcomes = compare_runs(ours, theirs)
    text = table(outcomes, "kbroker", "Kafka")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text if not args.quiet else text.splitlines()[-1])
    print(f"cluster scenarios: Kafka {took:.1f} s, kbroker {ours_took:.1f} s", file=sys.stderr)
    return 1 if any(o.unknown for o in outcomes) else 0


def score(bootstrap: str, theirs: dict, name: str, only: str | None, out: str | None, quiet: bool,
          sasl_bootstrap: str | None = None) -> int:
    from .runner import compare_runs, run_all, table

    ours = run_all(bootstrap, only, sasl_bootstrap=sasl_bootstrap)
    outcomes = compare_runs(ours, theirs)
    text = table(outcomes, name, "Kafka")
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    if not quiet:
        print(text)
    else:
        print(text.splitlines()[-1])
    return 1 if any(o.unknown for o in outcomes) else 0


def run(args) -> int:
    from .runner import load_recorded

    return score(args.bootstrap, load_recorded(), args.name, args.only, args.out, args.quiet, args.sasl)


def live(args) -> int:
    from .realkafka import KafkaUnavailable, RealKafka
    from .runner import run_all

    if args.cluster:
        return live_cluster(args)
    try:
        with RealKafka(secure=True) as k:
            theirs = run_all(k.bootstrap, args.only, sasl_bootstrap=k.sasl_bootstrap)
    except KafkaUnavailable as e:
        print(f"conformance: real Kafka unavailable: {e}", file=sys.stderr)
        return 2
    if args.bootstrap:
        return score(args.bootstrap, theirs, args.name, args.only, args.out, args.quiet, args.sasl)
    import tempfile

    from .runner import kbroker_for_conformance

    with tempfile.TemporaryDirectory(prefix="kbroker-conformance-") as data, kbroker_for_conformance(data) as b:
        return score(b.bootstrap_servers, theirs, "kbroker", args.only, args.out, args.quiet,
                     b.listeners["SASL_PLAINTEXT"])


def add_arguments(p: argparse.ArgumentParser, with_bootstrap: str = "required") -> None:
    if with_bootstrap == "required":
        p.add_argument("bootstrap", metavar="HOST:PORT")
    elif with_bootstrap == "optional":
        p.add_argument("bootstrap", metavar="HOST:PORT", nargs="?")
    p.add_argument("--only", default=None, help="scenarios matching this pattern (e.g. 'produce_*' or 'metadata*@v12')")
    p.add_argument("--name", default="broker", help="what the broker is called in the table")
    p.add_argument("--out", default=None, help="also write the table to this file")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    if with_bootstrap == "optional":
        p.add_argument("--cluster", action="store_true",
                       help="the cluster scenarios: a Kafka of three brokers against a kbroker of three")
    p.add_argument("--sasl", default=None, metavar="HOST:PORT",
                   help="the broker's SASL_PLAINTEXT listener, set up as realkafka.security_settings says "
                        "(user alice, ACLs on, User:ANONYMOUS a super user); without it the SASL and ACL "
                        "scenarios record that they could not run")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kbroker.conformance")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record", help="start real Kafka and record its answers")
    p.add_argument("--only", default=None)
    p.add_argument("--cluster", action="store_true", help="the cluster scenarios, on three Kafka brokers")
    add_arguments(sub.add_parser("run", help="score a broker against the recorded answers"))
    add_arguments(sub.add_parser("live", help="score a broker against a real Kafka started now"), "optional")
    args = ap.parse_args(argv)
    return {"record": record, "run": run, "live": live}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
